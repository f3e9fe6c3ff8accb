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
from typing import Any

import structlog

from callfleet import scrub

REDACTED = scrub.MARKER

_configured = False


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
    global _configured
    if _configured:
        return
    _configured = True
    level_name = (level or os.environ.get("CALLFLEET_LOG_LEVEL", "info")).upper()
    numeric = logging.getLevelName(level_name)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    use_json = (not sys.stderr.isatty()) if json is None else json
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
            renderer,
            scrub_line,
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
                    redact_secrets, renderer, scrub_line],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
