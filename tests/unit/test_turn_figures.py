"""Turn figures and traces, piece by piece: the observer reading real Pipecat frames, the
worker's batching, the hook on ``PipelineWorker``, the supervisor's aggregation and resource
samples, and the ``[observability]`` config."""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import Any

import msgspec
import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    MetricsFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import (
    LLMTokenUsage,
    LLMUsageMetricsData,
    ProcessingMetricsData,
    TTFBMetricsData,
    TTSUsageMetricsData,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from protocol import decode, encode
from protocol.messages import Turn, TurnFigures
from supervisor.commands.sessions import Session
from supervisor.config import ConfigError, parse
from supervisor.sessions.resources import SAMPLES_KEPT, SessionResources
from supervisor.sessions.state import SessionState
from supervisor.sessions.turns import RECENT_TURNS, SessionFigures, percentile
from supervisor.sessions.view import describe_record
from supervisor.store import SessionRecord
from worker import pipeline_hooks
from worker.tracing import traces_url
from worker.turn_metrics import FigureBook, FigureShipper, TurnFigureObserver, service_name

# -- the worker: reading Pipecat's frames -----------------------------------------------------------


def pushed(frame: Any, source: FrameProcessor) -> FramePushed:
    return FramePushed(source=source, destination=source, frame=frame, direction=FrameDirection.DOWNSTREAM,
                       timestamp=0)


async def test_the_observer_reads_ttfb_processing_usage_and_voice_to_voice_from_pipecats_frames() -> None:
    book = FigureBook()
    observer = TurnFigureObserver(book)
    source = FrameProcessor()
    await observer.on_push_frame(pushed(VADUserStartedSpeakingFrame(), source))
    await observer.on_push_frame(pushed(MetricsFrame(data=[
        TTFBMetricsData(processor="DeepgramSTTService#0", value=0.2),
        TTFBMetricsData(processor="OpenAILLMService#3", value=0.3),
        ProcessingMetricsData(processor="OpenAILLMService#3", value=0.5),
        LLMUsageMetricsData(processor="OpenAILLMService#3",
                            value=LLMTokenUsage(prompt_tokens=40, completion_tokens=12, total_tokens=52)),
        TTSUsageMetricsData(processor="OpenAITTSService#0", value=27),
    ]), source))
    stopped = VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=time.time() - 0.5)
    await observer.on_push_frame(pushed(stopped, source))
    await observer.on_push_frame(pushed(BotStartedSpeakingFrame(), source))
    await asyncio.sleep(0.05)  # Pipecat runs an observer's event handlers as tasks

    figures = book.take()
    assert figures is not None
    [turn] = figures.turns
    assert 0.6 <= turn.voice_to_voice_s < 5  # from the user's last word (stop_secs before the VAD said so)
    assert turn.ttfb_s == {"DeepgramSTTService": 0.2, "OpenAILLMService": 0.3}
    assert figures.ttfb_s == [("DeepgramSTTService", 0.2), ("OpenAILLMService", 0.3)]
    assert figures.processing_s == [("OpenAILLMService", 0.5)]
    assert figures.usage == {"llm_prompt_tokens": 40, "llm_completion_tokens": 12, "tts_characters": 27}
    assert book.take() is None  # taken: the next batch starts empty


async def test_a_turns_ttfb_starts_over_when_the_user_speaks_again() -> None:
    book = FigureBook()
    book.ttfb_measured("OpenAILLMService", 0.4)  # an answer the user talked over
    book.user_started()
    book.ttfb_measured("OpenAITTSService", 0.1)
    book.turn_answered(0.9)
    figures = book.take()
    assert figures is not None and figures.turns[0].ttfb_s == {"OpenAITTSService": 0.1}


def test_a_service_is_named_by_its_class_not_its_instance() -> None:
    assert service_name("OpenAILLMService#12") == "OpenAILLMService"
    assert service_name("my_stt") == "my_stt"


async def test_the_shipper_sends_what_was_gathered_and_the_rest_when_closed() -> None:
    sent: list[msgspec.Struct] = []
    book = FigureBook()
    shipper = FigureShipper(book, sent.append)
    shipper.ship()
    assert sent == []  # nothing measured, nothing sent
    book.used("tts_characters", 5)
    shipper.close()
    assert sent == [TurnFigures(usage={"tts_characters": 5})]


def test_turn_figures_cross_the_wire_unchanged() -> None:
    figures = TurnFigures(turns=[Turn(at=1.5, voice_to_voice_s=0.8, ttfb_s={"OpenAILLMService": 0.2})],
                          ttfb_s=[("OpenAILLMService", 0.2)], processing_s=[("OpenAITTSService", 0.1)],
                          usage={"tts_characters": 12.0})
    assert decode(encode(figures)) == figures


# -- the worker: every pipeline the session's bot builds ----------------------------------------------


def test_a_pipeline_built_in_the_sessions_context_gets_the_observer_and_tracing_and_no_other_does() -> None:
    pipeline_hooks.install()
    book = FigureBook()
    context = contextvars.copy_context()
    pipeline_hooks.set_for_session(context, pipeline_hooks.SessionHooks("session-1", book, tracing=True))

    hosted = context.run(lambda: PipelineWorker(Pipeline([])))
    assert not any(isinstance(o, TurnFigureObserver) for o in hosted._observer._observers)  # no queue of its own
    assert hosted._conversation_id == "session-1" and hosted.turn_trace_observer is not None

    mine = context.run(lambda: PipelineWorker(Pipeline([]), enable_tracing=False, conversation_id="theirs"))
    assert mine._conversation_id == "theirs" and mine.turn_trace_observer is None  # the bot's own choice stands

    elsewhere = PipelineWorker(Pipeline([]))
    assert not any(isinstance(o, TurnFigureObserver) for o in elsewhere._observer._observers)
    assert elsewhere.turn_trace_observer is None


async def test_the_observer_rides_the_turn_tracking_observer_and_is_added_only_without_one() -> None:
    pipeline_hooks.install()
    book = FigureBook()
    context = contextvars.copy_context()
    pipeline_hooks.set_for_session(context, pipeline_hooks.SessionHooks("session-1", book))
    plain = PipelineWorker(Pipeline([]))
    hosted = context.run(lambda: PipelineWorker(Pipeline([])))
    assert len(hosted._observer._observers) == len(plain._observer._observers)  # one proxy fewer per frame
    carrier = hosted.turn_tracking_observer
    assert carrier is not None
    await carrier.on_push_frame(pushed(MetricsFrame(data=[TTFBMetricsData(processor="OpenAILLMService#0",
                                                                          value=0.25)]), FrameProcessor()))
    assert book.ttfb == [("OpenAILLMService", 0.25)]  # what the carrier sees reaches the book

    untracked = context.run(lambda: PipelineWorker(Pipeline([]), enable_turn_tracking=False))
    assert [o.book for o in untracked._observer._observers if isinstance(o, TurnFigureObserver)] == [book]


def test_the_traces_path_is_added_to_a_collectors_base_url_once() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("https://collector:4318/") == "https://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"


# -- the supervisor: a session's figures --------------------------------------------------------------


def test_percentiles_are_nearest_rank_and_none_without_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (50.0, 90.0, 99.0)
    assert percentile([0.3], 99) == 0.3
    assert percentile([], 50) is None


def test_a_sessions_figures_add_up_across_batches() -> None:
    figures = SessionFigures()
    for n in range(1, 8):
        figures.add(TurnFigures(turns=[Turn(at=float(n), voice_to_voice_s=n / 10, ttfb_s={"OpenAILLMService": n / 100})],
                                ttfb_s=[("OpenAILLMService", n / 100)], usage={"llm_prompt_tokens": 10, "tts_characters": 3}))
    view = figures.turns_view()
    assert view["count"] == 7
    assert view["voice_to_voice_s"] == {"p50": 0.4, "p90": 0.7, "p99": 0.7, "last": 0.7}
    assert view["ttfb_s"] == {"OpenAILLMService": {"p50": 0.04, "p90": 0.07, "p99": 0.07}}
    assert [t["at"] for t in view["recent"]] == [3.0, 4.0, 5.0, 6.0, 7.0] and len(view["recent"]) == RECENT_TURNS
    assert view["recent"][-1] == {"at": 7.0, "voice_to_voice_s": 0.7, "ttfb_s": {"OpenAILLMService": 0.07}}
    assert figures.usage_view() == {"llm_completion_tokens": 0, "llm_prompt_tokens": 70, "tts_characters": 21}


def test_a_session_that_measured_nothing_shows_empty_figures_not_missing_ones() -> None:
    figures = SessionFigures()
    assert figures.turns_view() == {"count": 0, "voice_to_voice_s": None, "ttfb_s": {}, "processing_s": {},
                                    "recent": []}
    assert figures.usage_view() == {"llm_completion_tokens": 0, "llm_prompt_tokens": 0, "tts_characters": 0}


def test_resources_count_cpu_from_the_first_sample_and_across_a_failover() -> None:
    res = SessionResources()
    res.add(pid=10, at=100.0, cpu=5.0, pss_mb=80.0)  # the worker's boot, before the session: not counted
    assert (res.cpu_s, res.cpu_percent, res.pss_mb) == (0.0, None, 80.0)
    res.add(pid=10, at=105.0, cpu=5.5, pss_mb=90.0)
    assert res.cpu_s == 0.5 and res.cpu_percent is not None and res.cpu_percent > 0
    res.add(pid=11, at=110.0, cpu=2.0, pss_mb=70.0)  # a new worker after a failover
    assert res.cpu_s == 0.5 and res.pss_mb == 70.0
    res.add(pid=11, at=115.0, cpu=2.25, pss_mb=71.0)
    assert res.cpu_s == 0.75
    assert [s[0] for s in res.view()["samples"]] == [100.0, 105.0, 110.0, 115.0]


def test_resource_samples_are_bounded() -> None:
    res = SessionResources()
    for n in range(SAMPLES_KEPT + 10):
        res.add(pid=1, at=float(n), cpu=0.0, pss_mb=1.0)
    samples = res.view()["samples"]
    assert len(samples) == SAMPLES_KEPT and samples[0][0] == 10.0


# -- the config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("toml", "error"), [
    ('[observability]\notlp_endpoint = "collector:4318"',
     "observability.otlp_endpoint: expected an http(s) URL, got 'collector:4318'"),
    ('[observability]\notlp_endpoint = "grpc://collector:4317"',
     "observability.otlp_endpoint: expected an http(s) URL, got 'grpc://collector:4317'"),
    ('[observability]\notlp_endpoint = 4318', "observability.otlp_endpoint: expected str | null, got int"),
    ('[observability]\nservice_name = ""', "observability.service_name: expected str of length >= 1"),
    ('[observability]\nsampling = 0.5', "observability.sampling: unknown key"),
])
def test_a_bad_observability_table_stops_start_up_naming_the_key(toml: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(toml)
    assert str(caught.value) == error


def test_traces_are_off_by_default_and_named_callfleet() -> None:
    obs = parse("").observability
    assert (obs.otlp_endpoint, obs.service_name) == (None, "callfleet")
    assert parse('[observability]\notlp_endpoint = "https://otel.example:4318"').observability.otlp_endpoint \
        == "https://otel.example:4318"


# -- ctl session -------------------------------------------------------------------------------------


def test_ctl_session_shows_the_figures_one_line_each_and_not_the_samples() -> None:

    figures, resources = SessionFigures(), SessionResources()
    figures.add(TurnFigures(turns=[Turn(at=1.0, voice_to_voice_s=0.75)], ttfb_s=[("OpenAILLMService", 0.25)],
                            usage={"tts_characters": 12}))
    resources.add(pid=1, at=1.0, cpu=0.5, pss_mb=90.0)
    record = SessionRecord(id="s1", state=SessionState.JOINED, profile="voice", kind="pipecat",
                           extra={"turns": figures.turns_view(), "usage": figures.usage_view(),
                                  "resources": resources.view()})
    shown = Session().render(describe_record(record)).splitlines()
    labelled = {line[:16].rstrip(): line[16:] for line in shown}
    assert labelled["turns"] == "1  voice-to-voice p50 0.750s  p90 0.750s  p99 0.750s  last 0.750s"
    assert labelled["ttfb"] == "OpenAILLMService  p50 0.250s  p90 0.250s  p99 0.250s"
    assert labelled["usage"] == "tts_characters 12"
    assert labelled["resources"] == "cpu 0.0s (- lately)  pss 90.0 MB  1 samples"
    assert not any(line.startswith(("recent", "samples")) for line in shown)


def test_ctl_session_of_a_session_that_measured_nothing_shows_no_figure_lines() -> None:

    shown = Session().render(describe_record(SessionRecord(id="s1", state=SessionState.JOINED, profile="echo",
                                                           kind="echo")))
    assert not [line for line in shown.splitlines() if line[:16].rstrip() in ("turns", "ttfb", "usage", "resources")]
