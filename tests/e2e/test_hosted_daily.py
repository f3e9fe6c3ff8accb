"""The ``daily`` module a hosted Pipecat bot sees (worker.hosted_daily): its CallClient is
the worker's one client, which still reports every callback to the supervisor while the
bot's handler hears them too; ``Daily.init()`` may be called again (a second real init
aborts the process); the join and leave the bot makes are what the worker counts.

Each scenario runs in its own process, over the test double of daily-python whose second
``Daily.init()`` aborts like the real one, and, for cloud mode, over the installed
daily-python itself (offline: clients and Pipecat's imports work, joins do not).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCENARIO = r'''
import asyncio, json, sys
from worker import hosted_daily
from worker.backends import init_sdk, load_backend
from worker.call import CallHost

backend = load_backend("tests.doubles.threaded_client")
init_sdk(backend)
daily = hosted_daily.install(backend)


async def main():
    events = []
    host = CallHost(backend, asyncio.get_running_loop(), emit_event=events.append, emit_audio=lambda h, p: None)
    hosted_daily.attach(host)
    import daily as seen  # what a bot's `import daily` gives
    seen.Daily.init()  # Pipecat's transport calls it; a second real init would abort here
    heard = []

    class BotHandler(seen.EventHandler):
        def on_participant_joined(self, participant):
            heard.append(participant["id"])

    client = seen.CallClient(event_handler=BotHandler())
    joined = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    join_done = host.expect_bot_join()
    client.join("http://sandbox/room", None, None,
                completion=lambda data, error: loop.call_soon_threadsafe(joined.set_result, (data, error)))
    data, error = await asyncio.wait_for(joined, 5)
    host_data = await asyncio.wait_for(join_done, 5)
    # A participant joins later: the bot's handler and the supervisor's event stream both hear it.
    client._client._event("on_participant_joined", {"id": "late", "info": {"isLocal": False}})
    for _ in range(100):
        if heard and any(type(e).__name__ == "ParticipantJoined" for e in events):
            break
        await asyncio.sleep(0.01)
    left = loop.create_future()
    client.leave(completion=lambda error: loop.call_soon_threadsafe(left.set_result, error))
    await asyncio.wait_for(left, 5)
    await asyncio.sleep(0.05)
    client.release()  # the worker's to do: the client stays usable
    print(json.dumps({
        "same_client": client._client is host.client,
        "daily_is_hosted": seen is daily and seen.__wrapped__ is backend,
        "bot_join_data_local": data["participants"]["local"]["id"],
        "host_join_data_local": host_data["participants"]["local"]["id"],
        "host_joined_then_left": [host.calls_finished, host.joined],
        "bot_heard": heard,
        "supervisor_heard": sorted({type(e).__name__ for e in events}),
        "client_alive_after_release": host.client is not None,
    }))

asyncio.run(main())
'''

CLOUD = r'''
import json
from worker.pipecat_preload import prepare
prepare("daily")
import daily
import pipecat.transports.daily.transport as transport
from worker import hosted_daily
from worker.backends import load_backend
real = load_backend("daily")
daily.Daily.init()
daily.Daily.init()
try:
    daily.CallClient(event_handler=None)
    outside = "no error"
except RuntimeError as exc:
    outside = str(exc)
source = daily.CustomAudioSource(16000, 1)  # what the transport makes: the real one, its writes counted
track = daily.CustomAudioTrack(source)
print(json.dumps({
    "real_daily_python": real.__name__ == "daily" and real is not daily and hasattr(real, "CallClient"),
    "transport_uses_hosted_client": transport.CallClient is hosted_daily.HostedCallClient,
    "custom_audio_is_real_under_the_count": isinstance(source.wrapped, real.CustomAudioSource)
                                             and isinstance(track, real.CustomAudioTrack),
    "outside_a_worker": outside,
}))
'''


def _run(script: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_hosted_bots_call_client_is_the_workers_and_both_hear_every_callback() -> None:
    result = _run(SCENARIO)
    assert result["same_client"] is True
    assert result["daily_is_hosted"] is True
    assert result["bot_join_data_local"] == result["host_join_data_local"] == "local-1"
    assert result["host_joined_then_left"] == [1, False]  # one call hosted, counted once
    assert result["bot_heard"] == ["late"]
    assert "ParticipantJoined" in result["supervisor_heard"]  # type: ignore[operator]
    assert "CallStateUpdated" in result["supervisor_heard"]  # type: ignore[operator]
    assert result["client_alive_after_release"] is True


@pytest.mark.skipif(importlib.util.find_spec("pipecat") is None or importlib.util.find_spec("daily") is None,
                    reason="needs the pipecat extra and daily-python")
def test_in_cloud_mode_pipecat_runs_over_the_real_daily_python_with_the_workers_client() -> None:
    result = _run(CLOUD)
    assert result["real_daily_python"] is True
    assert result["transport_uses_hosted_client"] is True
    assert result["custom_audio_is_real_under_the_count"] is True
    assert "not a callfleet worker" in str(result["outside_a_worker"])
