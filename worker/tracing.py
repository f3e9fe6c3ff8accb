"""Pipecat's OpenTelemetry traces, exported over OTLP/HTTP to ``[observability] otlp_endpoint``.

The supervisor names the endpoint in each ``RunBot``; the first session that has one sets
up Pipecat's tracing (``pipecat.utils.tracing.setup.setup_tracing``, a ``BatchSpanProcessor``
over an OTLP/HTTP span exporter) for the worker process, since OpenTelemetry's tracer
provider is process-global. A later session sending elsewhere (after a reload, when a
worker hosts several sessions) re-points the same exporter. ``worker.pipeline_hooks`` then
builds every pipeline with ``enable_tracing=True`` and the session id as its
``conversation_id``: Pipecat's conversation -> turn -> stt/llm/tts spans.

Export runs on the span processor's own thread, never on the loop. A collector that is down
costs a failed export there and nothing else: each request gives up after
``EXPORT_TIMEOUT_S``, and the flush at the end of a session waits at most ``FLUSH_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = structlog.get_logger("worker.tracing")

TRACES_PATH = "/v1/traces"
EXPORT_TIMEOUT_S = 3.0
FLUSH_TIMEOUT_S = 2.0

_exporter: _Retargetable | None = None


def traces_url(endpoint: str) -> str:
    """The collector's base URL with OTLP's traces path (kept when already there)."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


class _Retargetable(SpanExporter):
    """An OTLP/HTTP span exporter whose endpoint a later session may change."""

    def __init__(self, url: str) -> None:
        self.url = ""
        self._inner: Any = None
        self.point_at(url)

    def point_at(self, url: str) -> None:
        if url == self.url:
            return
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        old, self._inner, self.url = self._inner, OTLPSpanExporter(endpoint=url, timeout=EXPORT_TIMEOUT_S), url
        if old is not None:
            old.shutdown()

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        result: SpanExportResult = self._inner.export(spans)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))


def enable(endpoint: str, service_name: str) -> bool:
    """Export this process's spans to ``endpoint`` (an OTLP/HTTP base URL); False when
    OpenTelemetry is not installed or Pipecat could not set it up (logged)."""
    global _exporter
    url = traces_url(endpoint)
    if _exporter is not None:
        _exporter.point_at(url)
        return True
    from pipecat.utils.tracing.setup import is_tracing_available, setup_tracing

    if not is_tracing_available():
        log.warning("tracing asked for but OpenTelemetry is not installed")
        return False
    exporter = _Retargetable(url)
    if not setup_tracing(service_name=service_name, exporter=exporter):
        log.warning("Pipecat could not set up tracing", endpoint=url)
        return False
    _exporter = exporter
    log.info("tracing enabled", endpoint=url, service_name=service_name)
    return True


async def flush() -> None:
    """Send the spans still queued (a session ended): bounded, off the loop."""
    if _exporter is None:
        return
    from opentelemetry import trace

    provider: Any = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is None:
        return
    try:
        done = await asyncio.to_thread(force_flush, int(FLUSH_TIMEOUT_S * 1000))
    except Exception as exc:  # an exporter's failure is the collector's problem, never the session's
        log.warning("flushing spans failed", error=str(exc))
        return
    if not done:
        log.warning("spans not all flushed in time", timeout_s=FLUSH_TIMEOUT_S)
