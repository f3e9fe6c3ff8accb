"""Prometheus metrics, every series named ``callfleet_…``.

Counts that already live in the daemon (workers, sessions, frames, restarts, retries) are
read when scraped by a custom collector rather than mirrored; latencies are histograms
observed as they happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from protocol.messages import TurnFigures

# Conversational latencies: sub-second is good, past a few seconds the caller talks over it.
TURN_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._start = Histogram("callfleet_session_start_latency_seconds", "Request to bot joined",
                                buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30), registry=self.registry)
        self._failover = Histogram("callfleet_failover_gap_seconds", "Worker lost to bot rejoined",
                                   buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10), registry=self.registry)
        # Counted as they happen, so the total never goes down when a session ends.
        self._dropped = Counter("callfleet_frames_dropped", "Bot audio frames the supervisor dropped on back-pressure",
                                registry=self.registry)
        # Pipecat's figures from every session's pipelines (supervisor.sessions.turns keeps
        # each session's own); the service label is a service class, never an instance.
        self._voice_to_voice = Histogram("callfleet_turn_voice_to_voice_seconds",
                                         "User stopped speaking to bot started speaking, per turn",
                                         buckets=TURN_BUCKETS, registry=self.registry)
        self._ttfb = Histogram("callfleet_service_ttfb_seconds", "Time to first byte of each service call",
                               ["service"], buckets=TURN_BUCKETS, registry=self.registry)
        self._usage = Counter("callfleet_usage", "What the bots' services used (tokens, characters, seconds)",
                              ["kind"], registry=self.registry)
        self._daemon: Any = None

    def bind(self, daemon: Any) -> None:
        self._daemon = daemon
        self.registry.register(_DaemonCollector(daemon))

    def start_latency(self, seconds: float) -> None:
        self._start.observe(seconds)

    def frame_dropped(self) -> None:
        self._dropped.inc()

    def failover(self, seconds: float) -> None:
        self._failover.observe(seconds)

    def turn_figures(self, figures: TurnFigures) -> None:
        for turn in figures.turns:
            self._voice_to_voice.observe(turn.voice_to_voice_s)
        for service, seconds in figures.ttfb_s:
            self._ttfb.labels(service=service).observe(seconds)
        for kind, amount in figures.usage.items():
            if amount > 0:
                self._usage.labels(kind=kind).inc(amount)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _DaemonCollector:
    def __init__(self, daemon: Any) -> None:
        self.d = daemon

    def collect(self) -> Iterator[Metric]:
        d = self.d
        sessions = GaugeMetricFamily("callfleet_sessions", "Live sessions by state", labels=["state"])
        for state, n in d.status()["sessions"].items():
            sessions.add_metric([state], n)
        yield sessions
        workers = GaugeMetricFamily("callfleet_workers", "Worker processes by state", labels=["state"])
        for state, n in d.status()["workers"].items():
            workers.add_metric([state], n)
        yield workers
        routed = CounterMetricFamily("callfleet_frames_routed", "Audio frames routed worker -> bot")
        routed.add_metric([], d.pool.frames_routed)
        yield routed
        worker_dropped = CounterMetricFamily("callfleet_worker_frames_dropped",
                                             "Bot audio frames workers dropped (as their Pongs report)")
        worker_dropped.add_metric([], d.pool.worker_frames_dropped)
        yield worker_dropped
        restarts = CounterMetricFamily("callfleet_worker_restarts", "Workers that died or were killed unexpectedly")
        restarts.add_metric([], d.pool.restarts)
        yield restarts
        retries = CounterMetricFamily("callfleet_rest_retries", "Daily REST calls retried")
        retries.add_metric([], d.rest.retries)
        yield retries
        bad = CounterMetricFamily("callfleet_bad_frames", "Undecodable frames dropped on workers.sock")
        bad.add_metric([], d.pool.bad_frames.total)
        yield bad
        stall = GaugeMetricFamily("callfleet_loop_stall_seconds_max", "Worst event-loop wake-up lateness since start")
        stall.add_metric([], d.loop_probe.max_s)
        yield stall
