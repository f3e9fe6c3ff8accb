"""Bad input at every door: the HTTP API fuzzed from its own OpenAPI document, random and
truncated frames on workers.sock and control.sock, malformed configs, a stream WebSocket
sending garbage. Each gets a clear error; nothing crashes; nothing answers 5xx."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import example, given, settings
from hypothesis import strategies as st

from protocol.framing import encode
from protocol.messages import Ping
from supervisor.config import ConfigError, parse
from tests.conftest import SandboxProcess
from tests.supervisor_harness import SupervisorProcess

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[SupervisorProcess]:
    """A fresh daemon per test: no test leans on sessions or counters another one left."""
    sandbox = SandboxProcess("--no-rate-limits")
    supervisor = SupervisorProcess(tmp_path, sandbox.port,
                                   pool={"min_idle": 1, "max_workers": 3}, sessions={"idle_timeout_s": 60})
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop()
        sandbox.stop()


def request(sup: SupervisorProcess, method: str, path: str, body: bytes | None = None,
            content_type: str = "application/json") -> tuple[int, Any]:
    req = urllib.request.Request(sup.url + path, data=body, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def _operations(sup: SupervisorProcess) -> list[tuple[str, str, dict[str, Any]]]:
    _, doc = request(sup, "GET", "/openapi.json")
    return [(method.upper(), path, op) for path, ops in doc["paths"].items() for method, op in ops.items()
            if not path.endswith("/stream")]


def _schema_body(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Bodies that follow the documented fields but with random values, or random JSON."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    props = schema.get("properties", {})
    if not props:
        return json_values
    return st.fixed_dictionaries({}, optional={name: json_values for name in props}) | json_values


def test_fuzzing_every_documented_operation_never_gets_a_5xx_and_the_daemon_survives(
        sup: SupervisorProcess) -> None:
    _, doc = request(sup, "GET", "/openapi.json")
    components = doc["components"]["schemas"]
    operations = _operations(sup)

    @settings(max_examples=250, deadline=None)
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        method, path, op = data.draw(st.sampled_from(operations))
        path = path.replace("{id}", data.draw(st.sampled_from(["nope", "x" * 40, "../../etc", "%00"])
                                              | st.uuids().map(str)))
        body: bytes | None = None
        content_type = "application/json"
        if "requestBody" in op:
            # JSON for the API; a form for Twilio's webhook, as Twilio posts it.
            content_type, spec = next(iter(op["requestBody"]["content"].items()))
            choice = data.draw(st.sampled_from(["schema", "raw"]))
            if choice == "raw":
                body = data.draw(st.binary(max_size=200))
            else:
                drawn = data.draw(_schema_body(spec["schema"], components))
                if content_type == "application/x-www-form-urlencoded":
                    fields = drawn if isinstance(drawn, dict) else {"value": drawn}
                    body = urllib.parse.urlencode({k: json.dumps(v) for k, v in fields.items()}).encode()
                else:
                    body = json.dumps(drawn).encode()
        status, reply = request(sup, method, path, body, content_type)
        # A 5xx only where the document says one can come (Daily failing, a probe saying 503).
        assert status < 500 or str(status) in op["responses"], (method, path, body, status, reply)
        probe = path in ("/healthz", "/readyz", "/livez")  # their bodies are status reports
        if status >= 400 and not probe:
            assert set(reply) == {"error", "info"}, reply

    fuzz()
    status, health = request(sup, "GET", "/healthz")
    assert status == 200 and health["status"] == "ok"
    # Valid bodies among the fuzz started real sessions: stop them, and every one ends.
    _, listing = request(sup, "GET", "/sessions")
    live = [s["session_id"] for s in listing["data"] if s["state"] not in ("ended", "failed")]
    for sid in live:
        request(sup, "DELETE", f"/sessions/{sid}")
    deadline = time.monotonic() + 30
    while live and time.monotonic() < deadline:
        time.sleep(0.2)
        live = [sid for sid in live if request(sup, "GET", f"/sessions/{sid}")[1]["state"] not in ("ended", "failed")]
    assert live == []


STATUS = b'{"command": "status"}'


def _is_status_request(body: bytes) -> bool:
    """A changed byte can leave a valid request (a space turned tab): that one is answered ok."""
    try:
        return bool(json.loads(body) == {"command": "status"})
    except ValueError:
        return False


# JSON a byte away from a request, and bytes that are not UTF-8 inside a JSON string.
control_bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda at, b: STATUS[:at] + bytes([STATUS[at] ^ b]) + STATUS[at + 1:], st.integers(0, 20),
              st.integers(1, 255)),
    st.binary(max_size=8).map(lambda b: b'{"command": "\xff' + b + b'"}'),  # 0xff is never UTF-8
)


def test_random_and_truncated_frames_on_both_sockets_are_answered_or_counted(sup: SupervisorProcess) -> None:
    ctx = zmq.Context.instance()
    workers_endpoint = json.loads(sup.ctl("--json", "status").stdout)["workers_endpoint"]

    @settings(max_examples=200, deadline=None)
    @given(frames=st.lists(st.binary(max_size=64), max_size=3), body=control_bodies, cut=st.integers(0, 20))
    @example(frames=[], body=b'{"command": "\xff"}', cut=3)  # not UTF-8: once killed the control loop
    def garbage(frames: list[bytes], body: bytes, cut: int) -> None:
        rogue = ctx.socket(zmq.DEALER)
        rogue.setsockopt(zmq.LINGER, 0)
        rogue.connect(workers_endpoint)
        rogue.send_multipart([*frames, body])
        rogue.send(encode(Ping(seq=1, sent_at=0.0))[:cut])  # a valid frame, truncated
        rogue.close(linger=1000)
        control = ctx.socket(zmq.DEALER)
        control.setsockopt(zmq.LINGER, 0)
        control.connect(f"ipc://{sup.run_dir / 'control.sock'}")
        try:
            control.send_multipart([*frames, body])
            assert control.poll(5000), f"control.sock did not answer {[*frames, body]!r}"
            reply = json.loads(control.recv_multipart()[-1])
            if _is_status_request(body):
                assert reply["ok"] is True, reply
            else:
                assert reply["ok"] is False and reply["error"], reply
        finally:
            control.close(linger=0)

    garbage()
    status, _ = request(sup, "GET", "/healthz")
    assert status == 200
    result = sup.ctl("--json", "status")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bad_frames"] > 0  # workers.sock counted what it dropped


SECTIONS = ["supervisor", "pool", "daily", "sessions", "audio", "sandbox", "bogus"]
KEYS = ["http_port", "run_dir", "min_idle", "max_workers", "ping_timeout_s", "mode", "max_duration_s",
        "sample_rate", "frame_ms", "failover", "start", "port", "room_prefix", "nonsense"]
toml_values = st.one_of(st.integers(-(2**31), 2**31), st.floats(allow_nan=False, allow_infinity=False),
                        st.booleans(), st.text(max_size=10).map(json.dumps))


@settings(max_examples=400, deadline=None)
@given(entries=st.lists(st.tuples(st.sampled_from(SECTIONS), st.sampled_from(KEYS), toml_values), max_size=6),
       garbage=st.text(max_size=20))
def test_any_config_either_loads_or_is_a_config_error_naming_a_key(entries: list[tuple[str, str, Any]], garbage: str) -> None:
    lines: dict[str, list[str]] = {}
    for section, key, value in entries:
        lines.setdefault(section, []).append(f"{key} = {value}")
    text = "\n".join(f"[{s}]\n" + "\n".join(dict.fromkeys(v)) for s, v in lines.items())
    for candidate in (text, text + "\n" + garbage):
        try:
            parse(candidate)
        except ConfigError as exc:
            message = str(exc)
            assert ":" in message and message.split(":")[0], message  # "key.path: what is wrong"


async def test_a_stream_websocket_sending_garbage_gets_errors_and_stays_up(sup: SupervisorProcess) -> None:
    import aiohttp

    status, bot, _ = await sup.http("POST", "/bots/start", json={"bot_profile": "stream"})
    assert status == 200, bot
    await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
    rng = __import__("random").Random(3)
    async with aiohttp.ClientSession() as s, \
            s.ws_connect(f"{sup.url}/sessions/{bot['session_id']}/stream?token={bot['stream_token']}") as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "config"
        errors = 0
        for i in range(60):
            kind = i % 4
            if kind == 0:
                await ws.send_str(os.urandom(rng.randint(1, 50)).hex())
            elif kind == 1:
                await ws.send_bytes(os.urandom(rng.choice([1, 3, 5, 7])))
            elif kind == 2:
                await ws.send_json(rng.choice([[], {}, {"type": "command"}, {"type": "command", "id": i, "command": 5},
                                               {"type": "command", "id": i, "command": "send_dtmf", "args": {"nope": 1}}]))
            else:
                await ws.send_json({"type": "command", "id": i, "command": "send_app_message", "args": "oops"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and errors < 45:
            msg = await ws.receive(timeout=5)
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data.get("type") == "error" or (data.get("type") == "reply" and data.get("ok") is False):
                    errors += 1
        assert errors >= 45, errors  # every bad message was answered
        await ws.send_json({"type": "command", "id": 999, "command": "get_participants"})
        while True:
            data = json.loads((await ws.receive(timeout=5)).data)
            if data.get("id") == 999:
                assert data["ok"] is True
                break
    status, detail, _ = await sup.http("GET", f"/sessions/{bot['session_id']}")
    assert detail["state"] == "joined", detail
    await sup.http("DELETE", f"/sessions/{bot['session_id']}")
