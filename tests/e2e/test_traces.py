"""``[observability] otlp_endpoint``: Pipecat's traces of a session, exported over OTLP/HTTP,
with the session id as the conversation id -- and a collector that is down costs the
session nothing.

A real supervisor and its workers run a Daily Bots ``voice_2024_10`` pipeline against the
sandbox's stand-in AI services while a caller speaks one turn (see ``test_turn_figures``);
the collector is ``tests/doubles/otlp_receiver.py``, a local aiohttp server decoding the
protobuf requests as a collector does.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from callfleet.procfs import alive
from sandbox.caller import CallerOptions
from tests.conftest import REPO, free_port
from tests.doubles.otlp_receiver import OTLPReceiver, Span
from tests.e2e.test_turn_figures import speech_wav, talk, voice_body
from tests.rtvi_client import RTVIClient
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                       reason="pipecat-ai is not installed (the pipecat extra)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None,
                       reason="Silero's VAD needs real speech: apt-get install espeak-ng"),
]

SERVICE_NAME = "callfleet-traces-test"


def supervisor(tmp: Path, endpoint: str) -> SupervisorProcess:
    proc = SupervisorProcess(tmp, None, supervisor={"profiles": str(REPO / "configs" / "profiles.toml")},
                             sessions={"idle_timeout_s": 60, "join_timeout_s": 20},
                             observability={"otlp_endpoint": endpoint, "service_name": SERVICE_NAME})
    proc.start(timeout=60)
    return proc


async def one_turn_session(sup: SupervisorProcess, tmp_path: Path) -> tuple[str, int]:
    """A voice session in which the caller speaks once and leaves; (its id, its worker's pid)."""
    ai = f"http://127.0.0.1:{sup.config['sandbox']['port']}/ai"
    wav = await speech_wav(tmp_path)
    bot = await sup.start_bot("voice_2024_10", **voice_body(ai))
    sid = bot["session_id"]
    client = RTVIClient(CallerOptions(room_url=bot["room_url"], token=bot["token"], tone_hz=None, markers=False))
    await client.join()
    try:
        await talk(client, ai, wav, turns=1)
        joined = await sup.wait_session(sid, lambda d: d["turns"]["count"] >= 1, timeout=15, what="the turn")
    finally:
        await client.conn.leave()
    return sid, joined["worker_pid"]


def children(spans: list[Span], parent: Span, name: str) -> list[Span]:
    return [s for s in spans if s.name == name and s.parent_span_id == parent.span_id]


async def test_a_sessions_conversation_turns_and_service_calls_reach_the_collector_under_its_id(
        tmp_path: Path) -> None:
    async with OTLPReceiver() as otlp:
        sup = supervisor(tmp_path, otlp.endpoint)
        try:
            sid, _ = await one_turn_session(sup, tmp_path)
            ended = await sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"), timeout=30)
            assert ended["state"] == "ended", ended
            # The conversation span ends with the pipeline; the worker flushes it as the bot ends.
            [conversation] = await wait_until(lambda: otlp.named("conversation"), 15, "the conversation span")
        finally:
            sup.stop()
    assert conversation.attributes["conversation.id"] == sid
    assert conversation.parent_span_id == ""
    assert conversation.resource["service.name"] == SERVICE_NAME
    turns = children(otlp.spans, conversation, "turn")
    assert turns and all(t.attributes["conversation.id"] == sid for t in turns), otlp.spans
    assert all(t.trace_id == conversation.trace_id for t in turns)
    # Each service's call is a child of the turn it served: the caller's sentence heard, the
    # LLM asked, the answer spoken.
    in_turns = {s.name for t in turns for s in otlp.spans if s.parent_span_id == t.span_id}
    assert {"stt", "llm", "tts"} <= in_turns, sorted(in_turns)


async def test_a_collector_that_is_down_leaves_the_session_and_its_worker_unaffected(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    sup = supervisor(tmp_path, down)
    try:
        sid, pid = await one_turn_session(sup, tmp_path)
        ended = await sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"), timeout=30)
        assert (ended["state"], ended["end_reason"]) == ("ended", "participant_left"), ended
        assert ended["turns"]["count"] >= 1 and ended["usage"]["tts_characters"] > 0, ended
        # Its worker ends as any does after its one session: the failed exports held nothing up.
        await wait_until(lambda: not alive(pid), 15, "the session's worker to exit")
    finally:
        sup.stop()
