"""structlog, configured once per process.

JSON lines when stderr is not a TTY, a console renderer when it is; contextvars merged so
``session_id`` / ``worker_id`` bound anywhere show up on every line; ISO UTC timestamps.
Secrets never reach the output: values under secret-looking keys are masked before the
line is rendered, and the rendered line is scrubbed (``callfleet.scrub``) of every secret
this process registered and of anything shaped like one -- whatever carried it: a message,
a traceback, an exception's repr, a Pipecat line routed in from loguru.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import structlog

from callfleet import scrub

REDACTED = scrub.MARKER

_configured = False

# Where this process's lines also go, one call per line: (the session_id the line has bound,
# or "", the line as JSON, rendered and scrubbed). Session logs (worker.log_shipping,
# supervisor.session_logs) set it; None: stderr only.
LineTap = Callable[[str, str], None]
_tap: LineTap | None = None
_json_lines = False  # the renderer writes JSON: the tap gets the very line written to stderr
_tapped = threading.local()  # the session of the line being rendered, between the two processors
_as_json = structlog.processors.JSONRenderer()


def set_line_tap(tap: LineTap | None) -> None:
    """Hand every line logged from now on to ``tap`` as well (None: stop)."""
    global _tap
    _tap = tap


def _tap_event(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # Before the renderer: note the line's session, or, when stderr gets console lines,
    # hand the tap its own JSON rendering of the line, scrubbed the same way.
    tap = _tap
    if tap is not None:
        session_id = str(event_dict.get("session_id") or "")
        if _json_lines:
            _tapped.session_id = session_id
        else:
            tap(session_id, scrub.scrub(str(_as_json(_logger, _name, dict(event_dict)))))
    return event_dict


def _tap_line(_logger: Any, _name: str, line: Any) -> Any:
    # After rendering and scrubbing: the JSON line stderr gets goes to the tap as it is.
    tap = _tap
    if tap is not None and _json_lines and isinstance(line, str):
        tap(getattr(_tapped, "session_id", ""), line)
    return line


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if scrub.is_secret_name(k) else _mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v) for v in value]
    return value


def redact_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor (before rendering): mask values under secret-looking keys."""
    return {
        k: (REDACTED if scrub.is_secret_name(k) and v is not None else _mask(v))
        for k, v in event_dict.items()
    }


def scrub_line(_logger: Any, _name: str, line: Any) -> Any:
    """structlog processor (after rendering): the line without any secret, known or by shape."""
    return scrub.scrub(line) if isinstance(line, str) else line


def configure(level: str | None = None, *, json: bool | None = None) -> None:
    """Configure structlog and stdlib logging for this process (idempotent)."""
    global _configured, _json_lines
    if _configured:
        return
    _configured = True
    level_name = (level or os.environ.get("CALLFLEET_LOG_LEVEL", "info")).upper()
    numeric = logging.getLevelName(level_name)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    use_json = (not sys.stderr.isatty()) if json is None else json
    _json_lines = use_json
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact_secrets,
            _tap_event,
            renderer,
            scrub_line,
            _tap_line,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the standard library (aiohttp, asyncio, ...) get the same
    # lines: the same renderer, the same bound context, the same masking.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
                    redact_secrets, _tap_event, renderer, scrub_line, _tap_line],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
