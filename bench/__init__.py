"""``callfleet bench``: an application on top of every package (it starts a sandbox and a
supervisor, drives synthetic callers, reads /proc). Nothing imports it.

- ``bench.main``   the run: start latency, added latency, frames, CPU, memory, leaks
- ``bench.stack``  the sandbox and supervisor processes it measures
- ``bench.floor``  the bare ZeroMQ ROUTER forwarding floor (also ``scripts/forwarding_floor.py``)
- ``bench.report`` the JSON report's helpers and the human summary
"""
