"""Webhooks without a network: the signature (against Standard Webhooks' published vector),
the secret's form, the bodies, the retry policy and its back-off schedule, the config's
bad values, and the sender's queue, cluster claim and shutdown grace."""

from __future__ import annotations

import asyncio
import base64
import random
from typing import Any

import aiohttp
import msgspec
import pytest
from structlog.testing import capture_logs

from callfleet import scrub
from callfleet.backoff import Backoff, Jitter
from supervisor import operator_secrets
from supervisor.config import ConfigError, WebhooksSection, parse
from supervisor.webhooks import sender_for
from supervisor.webhooks.delivery import Delivery, Outcome
from supervisor.webhooks.events import EventType, WebhookEvent, ended, event_id, started
from supervisor.webhooks.sender import WebhookSender, claim_key
from supervisor.webhooks.signing import headers, key_from, signature

# Standard Webhooks' published example (its specification and reference libraries' tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
SETTINGS = WebhooksSection(url="http://127.0.0.1:9/hooks?token=t0ken", secret_env="HOOK_SECRET")


# -- signing ----------------------------------------------------------------------------------------


def test_signature_matches_standard_webhooks_published_vector() -> None:
    assert signature(key_from(VECTOR_SECRET), VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE


def test_secret_without_whsec_prefix_is_the_same_key() -> None:
    assert key_from(VECTOR_SECRET.removeprefix("whsec_")) == key_from(VECTOR_SECRET)


def test_headers_carry_id_timestamp_and_signature() -> None:
    h = headers(key_from(VECTOR_SECRET), VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    assert h["webhook-id"] == VECTOR_ID
    assert h["webhook-timestamp"] == str(VECTOR_TS)
    assert h["webhook-signature"] == VECTOR_SIGNATURE
    assert h["content-type"] == "application/json"


@pytest.mark.parametrize(("secret", "why"), [
    ("whsec_not base64!", "not base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "decodes to 5 bytes; at least 16"),
])
def test_a_secret_that_is_no_key_is_refused_without_quoting_it(secret: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        key_from(secret)
    assert secret.removeprefix("whsec_") not in str(info.value)


# -- the bodies ---------------------------------------------------------------------------------------

DETAIL: dict[str, Any] = {"session_id": "s-1", "state": "ended", "profile": "echo", "kind": "echo",
                          "room_url": "http://127.0.0.1:8990/cf-x", "requested_at": 100.0, "joined_at": 101.5,
                          "ended_at": 111.75, "end_reason": "stopped", "error": None,
                          "frames": {"in": 5, "out": 4, "dropped": 0, "worker_out": 4, "worker_dropped": 0},
                          "failovers": 0, "participants": [{"id": "p", "name": "guest"}]}


def test_session_ended_has_reason_duration_timestamps_and_frames() -> None:
    event = ended(DETAIL)
    assert event.type is EventType.SESSION_ENDED
    assert event.data["end_reason"] == "stopped"
    assert event.data["started_at"] == 101.5 and event.data["ended_at"] == 111.75
    assert event.data["duration_s"] == 10.25
    assert event.data["frames"] == DETAIL["frames"]
    assert "participants" not in event.data
    assert "turns" not in event.data and "usage" not in event.data  # absent from the detail: absent here


def test_session_ended_carries_turns_and_usage_when_the_detail_has_them() -> None:
    turns, usage = {"count": 3, "voice_to_voice_s": {"p50": 0.8}}, {"llm_tokens": 120, "tts_characters": 300}
    event = ended({**DETAIL, "turns": turns, "usage": usage})
    assert event.data["turns"] == turns and event.data["usage"] == usage


def test_a_session_that_never_joined_ends_with_no_duration() -> None:
    event = ended({**DETAIL, "joined_at": None, "state": "failed", "end_reason": "join_failed"})
    assert event.data["started_at"] is None and event.data["duration_s"] is None


def test_event_body_is_type_id_created_at_and_data() -> None:
    body = msgspec.json.decode(msgspec.json.encode(started(DETAIL)))
    assert set(body) == {"type", "id", "created_at", "data"}
    assert body["type"] == "session.started"
    assert body["created_at"].endswith("Z")
    assert body["data"]["started_at"] == 101.5


def test_event_ids_are_one_per_session_and_type_wherever_built() -> None:
    assert started(DETAIL).id == started(DETAIL).id == event_id("s-1", EventType.SESSION_STARTED)
    assert started(DETAIL).id != ended(DETAIL).id
    assert ended(DETAIL).id != ended({**DETAIL, "session_id": "s-2"}).id


# -- delivery and back-off ----------------------------------------------------------------------------


class Receiver:
    """A scripted ``Post``: each answer a status, or an exception to raise."""

    def __init__(self, *answers: int | BaseException, retry_after: str | None = None) -> None:
        self.answers = list(answers)
        self.retry_after = retry_after
        self.seen: list[dict[str, str]] = []

    async def __call__(self, body: bytes, hdrs: dict[str, str]) -> tuple[int, str | None]:
        self.seen.append(hdrs)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer, self.retry_after


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def delivery(receiver: Receiver, sleeps: Sleeps, attempts: int = 5, jitter: Jitter = Jitter.NONE,
             clock: Any = lambda: 1_000.0) -> Delivery:
    policy = Backoff(0.5, 4.0, jitter=jitter, rng=random.Random(7))
    return Delivery(key_from(SECRET), receiver, policy, attempts, clock=clock, sleep=sleeps)


async def test_back_off_doubles_from_the_base_to_the_cap_between_attempts() -> None:
    sleeps = Sleeps()
    report = await delivery(Receiver(*[500] * 6), sleeps, attempts=6).deliver(started(DETAIL))
    assert report.outcome is Outcome.GAVE_UP and report.attempts == 6 and report.last == "HTTP 500"
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0, 4.0]


async def test_jitter_keeps_each_wait_between_half_and_all_of_its_step() -> None:
    sleeps = Sleeps()
    await delivery(Receiver(*[503] * 5), sleeps, jitter=Jitter.EQUAL).deliver(started(DETAIL))
    for delay, ceiling in zip(sleeps.delays, [0.5, 1.0, 2.0, 4.0], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(sleeps.delays)) > 1


@pytest.mark.parametrize("failure", [TimeoutError(), aiohttp.ClientConnectionError("refused"),
                                     aiohttp.ServerDisconnectedError()])
async def test_timeouts_and_connection_failures_are_retried(failure: BaseException) -> None:
    sleeps = Sleeps()
    report = await delivery(Receiver(failure, failure, 200), sleeps).deliver(ended(DETAIL))
    assert report.outcome is Outcome.DELIVERED and report.attempts == 3


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
async def test_a_refusal_other_than_429_is_not_retried(status: int) -> None:
    receiver, sleeps = Receiver(status, 200), Sleeps()
    report = await delivery(receiver, sleeps).deliver(ended(DETAIL))
    assert report.outcome is Outcome.REFUSED and report.attempts == 1 and report.last == f"HTTP {status}"
    assert sleeps.delays == []


async def test_429_is_retried_after_its_retry_after_when_that_is_longer() -> None:
    sleeps = Sleeps()
    report = await delivery(Receiver(429, 200, retry_after="3"), sleeps).deliver(ended(DETAIL))
    assert report.outcome is Outcome.DELIVERED
    assert sleeps.delays == [3.0]


async def test_a_retry_after_past_the_cap_waits_only_the_cap() -> None:
    sleeps = Sleeps()
    await delivery(Receiver(429, 200, retry_after="86400"), sleeps).deliver(ended(DETAIL))
    assert sleeps.delays == [4.0]


async def test_every_attempt_is_signed_anew_with_the_same_id() -> None:
    times = iter([1_000.0, 1_007.0])
    receiver = Receiver(500, 200)
    await delivery(receiver, Sleeps(), clock=lambda: next(times)).deliver(ended(DETAIL))
    first, second = receiver.seen
    assert first["webhook-id"] == second["webhook-id"] == ended(DETAIL).id
    assert (first["webhook-timestamp"], second["webhook-timestamp"]) == ("1000", "1007")
    assert first["webhook-signature"] != second["webhook-signature"]


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("toml", "message"), [
    ('[webhooks]\nurl = "ftp://hooks.example.com"\nsecret_env = "S"', "webhooks.url: expected an http(s) URL"),
    ('[webhooks]\nurl = "hooks.example.com/x"\nsecret_env = "S"', "webhooks.url: expected an http(s) URL"),
    ('[webhooks]\nurl = "https://hooks.example.com/x"', "webhooks.secret_env: required with webhooks.url"),
    ('[webhooks]\nsecret_env = "S"', "webhooks.url: required with webhooks.secret_env"),
    ('[webhooks]\nurl = "https://h/x"\nsecret_env = "S"\nmax_attempts = 0', "webhooks.max_attempts: expected int >= 1"),
    ('[webhooks]\nurl = "https://h/x"\nsecret_env = "S"\ntimeout_s = 0', "webhooks.timeout_s: expected float > 0"),
    ('[webhooks]\nurl = "https://h/x"\nsecret_env = "S"\nretry_base_s = 5\nretry_max_s = 1',
     "webhooks.retry_max_s: expected >= webhooks.retry_base_s"),
    ('[webhooks]\nurl = "https://h/x"\nsecret_env = "S"\nevents = ["session.ended"]', "webhooks.events: unknown key"),
])
def test_bad_webhooks_config_names_the_key(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(toml)
    assert str(info.value).startswith(message)


def test_no_url_no_sender() -> None:
    assert sender_for(parse("").webhooks, {}) is None


def test_a_missing_secret_variable_is_named() -> None:
    with pytest.raises(ValueError, match=r"webhooks\.secret_env: \$HOOK_SECRET is not set"):
        sender_for(SETTINGS, {})


def test_a_malformed_secret_is_named_not_quoted() -> None:
    with pytest.raises(ValueError, match=r"webhooks\.secret_env: \$HOOK_SECRET is not a webhook secret") as info:
        sender_for(SETTINGS, {"HOOK_SECRET": "hunter2-hunter2"})
    assert "hunter2" not in str(info.value)


# -- the sender -----------------------------------------------------------------------------------------


class Claims:
    """The cluster's SET NX, in memory: the first claim of a key wins."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    async def __call__(self, key: str, ttl_s: float) -> bool:
        first = key not in self.taken
        self.taken.add(key)
        return first


def fast(**changes: Any) -> WebhooksSection:
    return msgspec.structs.replace(SETTINGS, retry_base_s=0.01, retry_max_s=0.02, **changes)


async def test_enqueueing_never_waits_and_a_full_queue_drops_with_one_line() -> None:
    hang = asyncio.Event()

    async def hanging(body: bytes, hdrs: dict[str, str]) -> tuple[int, str | None]:
        await hang.wait()
        return 200, None

    sender = WebhookSender(fast(), key_from(SECRET), post=hanging, queue_size=1)
    with capture_logs() as logs:
        sender.session_started(DETAIL)  # queued (no task reads the queue yet)
        sender.session_ended(DETAIL)  # full: dropped
    dropped = [e for e in logs if e["event"].startswith("webhook dropped")]
    assert len(dropped) == 1 and dropped[0]["session_id"] == "s-1" and dropped[0]["log_level"] == "warning"
    await sender.close(0)


async def test_an_event_another_node_claimed_is_not_sent() -> None:
    receiver, claims = Receiver(200, 200), Claims()
    claims.taken.add(claim_key(ended(DETAIL)))
    sender = WebhookSender(fast(), key_from(SECRET), post=receiver)
    sender.claim = claims
    sender.start()
    sender.session_started(DETAIL)
    sender.session_ended(DETAIL)
    await sender.close(5)
    assert [h["webhook-id"] for h in receiver.seen] == [started(DETAIL).id]
    assert claims.taken == {claim_key(started(DETAIL)), claim_key(ended(DETAIL))}


async def test_an_undeliverable_event_is_dropped_with_one_warning_naming_the_session_not_the_url() -> None:
    sender = WebhookSender(fast(max_attempts=3), key_from(SECRET), post=Receiver(500, 500, 500))
    sender.start()
    with capture_logs() as logs:
        sender.session_ended(DETAIL)
        await sender.close(5)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    (line,) = warnings
    assert line["event"] == "webhook dropped: not delivered"
    assert (line["session_id"], line["attempts"], line["last"]) == ("s-1", 3, "HTTP 500")
    assert line["endpoint"] == "http://127.0.0.1:9"  # the URL's path and query (a token) stay out
    assert "t0ken" not in repr(logs)


async def test_shutdown_gives_pending_events_a_grace_then_counts_what_is_left() -> None:
    async def hanging(body: bytes, hdrs: dict[str, str]) -> tuple[int, str | None]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    sender = WebhookSender(fast(), key_from(SECRET), post=hanging)
    sender.start()
    sender.session_started(DETAIL)
    sender.session_ended(DETAIL)
    with capture_logs() as logs:
        await sender.close(0.2)
        sender.session_ended({**DETAIL, "session_id": "s-late"})  # after close: refused, not queued
    left = [e for e in logs if e["event"].startswith("webhooks dropped at shutdown")]
    assert len(left) == 1 and left[0]["events"] == 2
    late = [e for e in logs if e.get("session_id") == "s-late"]
    assert [e["event"] for e in late] == ["webhook dropped: the sender has stopped"]


def test_a_webhook_event_names_its_session() -> None:
    event = WebhookEvent(type=EventType.SESSION_STARTED, id="evt_x", created_at="2026-01-01T00:00:00.000Z",
                         data={"session_id": "s-9"})
    assert event.session_id == "s-9"


def test_the_webhook_secret_is_registered_with_the_scrubber() -> None:
    config = parse('[webhooks]\nurl = "https://hooks.example.com/x"\nsecret_env = "HOOK_SECRET"')
    held = operator_secrets.register(config, [], {"HOOK_SECRET": SECRET})
    try:
        assert SECRET in held
        assert SECRET not in scrub.scrub(f"a line holding {SECRET}")
    finally:
        scrub.forget(held)
