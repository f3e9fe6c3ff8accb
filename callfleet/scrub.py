"""Secrets out of whatever leaves a process: log lines, error text, stored records, events.

Each process keeps one registry of the secret values it holds (``SECRETS``): the
supervisor, the operator's keys it reads and each live session's keys (the request's own,
the bot's proxy key); a worker, what its session was given. ``scrub`` replaces every
registered value -- and anything shaped like a credential it could not know in advance (a
``Bearer`` value, a JWT, ``api_key=...``, a provider's key prefix, a PEM private key) --
with ``[redacted]``. Logs and errors pay for it; the audio path never calls it. The cost
stays flat as sessions come and go: registering is a dict update, and a line is searched
for each secret with ``str`` search and for each shape only when a cheap substring check
says it could hold one (no pattern is rebuilt per session, nothing is compiled on the loop).

A value is matched as given and as it reads once escaped into JSON or a ``repr`` (a key
inside a quoted error body or a JSON log line), so a scrubbed line never keeps a copy.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

MARKER = "[redacted]"
MIN_LENGTH = 8  # a shorter value would mask ordinary words; no real key or token is that short
MAX_ERROR_CHARS = 500  # an error line on a record: enough to say what failed, never a dump
TRACEBACK = "Traceback (most recent call last):"
# What ``secrets_in`` takes from one request: more keys than any pipeline uses, and few enough
# that a body of thousands of ``*_key`` fields cannot make every later log line slow.
MAX_FOUND = 64

# Names whose values are secrets (a body's ``api_key``, an event's ``token``, an env var's
# ``OPENAI_API_KEY``, Daily Bots' ``api_keys`` of keys by provider); ``*_env`` names a
# variable, not its value.
_SECRET_NAME = re.compile(r"(token|api_?keys?|authorization|secret|password|passwd|credentials|key)$", re.I)

# Credentials by shape, for what no registry knows (a key a library read by itself): each
# pattern with the substrings one of which a text must hold for it to match. Group 1, where
# there is one, is kept (the scheme or the name before the value).
_SHAPES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (("Bearer", "bearer"), re.compile(r"(\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]{8,}")),
    (("eyJ",), re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")),  # JWTs (meeting tokens)
    (("sk-", "sk_", "xai-"), re.compile(r"\b(?:sk|gsk|xai)[-_][A-Za-z0-9_-]{16,}")),  # OpenAI, Anthropic, Groq, xAI
    (("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{30,}")),  # Google API keys
    (("PRIVATE KEY",), re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)),
)
# ``api_key=...``, ``"client_secret": "..."``: looked for only when the lowercased text
# holds one of the words.
_NAMED_WORDS = ("key", "token", "secret", "passw")
_NAMED = re.compile(r"((?:api[_-]?key|access[_-]?token|token|secret|password|passwd|private[_-]?key)[\"']?\s*[:=]\s*"
                    r"[\"']?)(?!\[redacted\])[^\s\"'&,;{}\[\]]{4,}", re.I)


def is_secret_name(name: object) -> bool:
    """Whether a field or variable of this name holds a secret (``api_key``, ``DAILY_API_KEY``)."""
    return isinstance(name, str) and bool(_SECRET_NAME.search(name)) and not name.lower().endswith("_env")


def _escaped(value: str) -> set[str]:
    return {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1]}


def _forms(value: str) -> set[str]:
    """``value`` as it may appear in text: as is, URL-quoted, escaped once or twice."""
    once = _escaped(value)
    forms = {value, quote(value, safe="")} | once
    for form in once:
        forms |= _escaped(form)
    return {f for f in forms if len(f) >= MIN_LENGTH}


def _inner(value: str) -> list[str]:
    """The secrets inside a JSON credentials document (a service account's ``private_key``)."""
    if not value.lstrip().startswith("{"):
        return []
    try:
        return secrets_in(json.loads(value))
    except ValueError:
        return []


class Secrets:
    """A process's registry of secret values, counted: a value two sessions hold stays
    registered until both forget it. Thread-safe (threads log too)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._forms_of: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._forms: tuple[str, ...] = ()  # what ``scrub`` looks for, longest first

    def register(self, *values: str | None) -> tuple[str, ...]:
        """Add values (None, empty and too-short ones are skipped); returns those added,
        for ``forget``."""
        added = tuple(v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH)
        added += tuple(inner for v in added for inner in _inner(v) if len(inner) >= MIN_LENGTH)
        if added:
            with self._lock:
                for value in added:
                    if value not in self._forms_of:
                        self._forms_of[value] = _forms(value)
                self._counts.update(added)
                self._refresh()
        return added

    def forget(self, values: Iterable[str]) -> None:
        """Take back what ``register`` returned."""
        with self._lock:
            self._counts.subtract(values)
            self._counts = +self._counts  # drop what reached zero
            for value in [v for v in self._forms_of if v not in self._counts]:
                del self._forms_of[value]
            self._refresh()

    def _refresh(self) -> None:
        forms = {form for value_forms in self._forms_of.values() for form in value_forms}
        # longest first: where one secret contains another, the whole of it goes
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def __len__(self) -> int:
        return len(self._counts)

    def scrub_known(self, text: str) -> str:
        """``text`` with every registered secret masked, and nothing else touched (for what a
        call's participants read, where a phrase like ``password: ...`` is theirs to say)."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MARKER)
        return text

    def without_known(self, value: Any) -> Any:
        """A JSON-like value with ``scrub_known`` applied to every string in it (keys included)."""
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.scrub_known(value)
        if isinstance(value, dict):
            return {self.without_known(k): self.without_known(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.without_known(v) for v in value]
        return value

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret and every credential-shaped string masked."""
        text = self.scrub_known(text)
        for needles, shape in _SHAPES:
            if any(needle in text for needle in needles):
                text = shape.sub(_mask_shape, text)
        lowered = text.lower()
        if any(word in lowered for word in _NAMED_WORDS):
            text = _NAMED.sub(_mask_shape, text)
        return text

    def masked(self, value: Any) -> Any:
        """A copy of a JSON-like value with secret-named fields masked and every string scrubbed."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: MARKER if is_secret_name(k) and v else self.masked(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.masked(v) for v in value]
        return value


def _mask_shape(match: re.Match[str]) -> str:
    return (match.group(1) if match.re.groups else "") + MARKER


SECRETS = Secrets()  # this process's: the supervisor's, or one worker's
register = SECRETS.register
forget = SECRETS.forget
scrub = SECRETS.scrub
masked = SECRETS.masked
without_known = SECRETS.without_known


def secrets_in(value: Any) -> list[str]:
    """The string values under secret-named fields, at any depth (a request's own keys:
    ``service_options.openai.api_key``, a body's ``{"openai_api_key": ...}``): the first
    ``MAX_FOUND`` of them."""
    found: list[str] = []
    _collect(value, found)
    return found


def _collect(value: Any, found: list[str]) -> None:
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, (list, tuple)):
        items = ((None, v) for v in value)
    else:
        return
    for name, v in items:
        if len(found) >= MAX_FOUND:
            return
        if is_secret_name(name) and isinstance(v, str):
            found.append(v)
        elif is_secret_name(name) and isinstance(v, dict):  # {"openai": "sk-…"}: keys by provider
            found.extend(key for key in v.values() if isinstance(key, str))
        else:
            _collect(v, found)


def one_line(text: str | None) -> str | None:
    """An error as a record keeps it and the API shows it: one line, scrubbed, bounded. A
    traceback becomes its exception line (``ValueError: bad``), after what preceded it."""
    if text is None:
        return None
    head, found, trace = text.partition(TRACEBACK)
    if found:
        raised = [line for line in trace.splitlines() if line.strip() and not line[0].isspace()]
        head = head.strip().rstrip(":")
        last = raised[-1].strip() if raised else "an exception"
        line = f"{head}: {last}" if head else last
    else:
        line = next((s for s in (raw.strip() for raw in text.splitlines()) if s), "")
    line = scrub(line)
    return line if len(line) <= MAX_ERROR_CHARS else line[:MAX_ERROR_CHARS - 1] + "…"


def exception_line(exc: BaseException) -> str:
    """``ExcType: message`` (the message's first line), scrubbed: an exception as one line."""
    message = str(exc).strip()
    return one_line(f"{type(exc).__name__}: {message}" if message else type(exc).__name__) or type(exc).__name__
