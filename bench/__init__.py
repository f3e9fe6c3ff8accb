"""``callfleet bench``: an application on top of every package (it starts a sandbox and a
supervisor, drives synthetic callers, reads /proc). Nothing imports it.

- ``bench.main``   the run: start latency, added latency, frames, CPU, memory, leaks
- ``bench.stack``  the sandbox and supervisor processes it measures
- ``bench.floor``  the bare ZeroMQ ROUTER forwarding floor (also ``scripts/forwarding_floor.py``)
- ``bench.report`` the JSON report's helpers and the human summary
- ``bench.progress`` the run's progress line on stderr
- ``bench.talk``   the speaking window both hosts are measured over, with the same callers
- ``bench.peer``   the peer: a Pipecat bot hosted as Pipecat's development runner does (its own process)
- ``bench.peer_host`` the peer's figures, beside callfleet's for a ``pipecat`` profile
- ``bench.capacity`` the largest N each host holds (also ``scripts/pipecat_capacity.py``)
"""
