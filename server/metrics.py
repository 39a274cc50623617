"""Prometheus metrics of one app: every metric definition, and `record_request` for a finished request.

Each app owns a CollectorRegistry, so several apps in one process (the tests) never share series.
One process serves a set of GPUs (one inference thread per model), so there is no multiprocess mode:
run one `segprune serve` per GPU and scrape each (README, "Metrics, Grafana and docker compose").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from segprune_core import __version__
from segprune_core.request import GenerationResult, Strategy
from server.settings import Settings

# 1 ms .. 10 min, five buckets per decade: fine enough for p50/p95 to tell a 2x prefill speedup apart.
LATENCY_BUCKETS: tuple[float, ...] = tuple(
    round(mantissa * 10.0**exponent, 6) for exponent in range(-3, 3) for mantissa in (1, 1.5, 2.5, 4, 6)
)
INFERENCE_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/audio/transcriptions", "/v1/audio/translations"})
# Requests whose model is not served (404, 401, invalid body) are counted under model="": a client can
# never create a series by naming a model (Prometheus shows an empty label as no label at all).
UNRESOLVED_MODEL = ""
MS_PER_SECOND = 1000.0

__all__ = ["CONTENT_TYPE_LATEST", "INFERENCE_ENDPOINTS", "LATENCY_BUCKETS", "Metrics", "UNRESOLVED_MODEL"]


def retention_label(retention: float) -> str:
    """The requested rate rounded to 2 decimals ("0.25"): at most 100 values per model and strategy."""
    return f"{round(retention, 2):.2f}"


def strategy_label(strategy: str) -> str:
    return Strategy(strategy).value  # raises on anything outside the enum rather than minting a series


class QueueDepth(Protocol):
    @property
    def running(self) -> int: ...

    @property
    def waiting(self) -> int: ...


class QueueSource(Protocol):
    """What the queue gauges read: the pool's workers by served model name."""

    @property
    def workers(self) -> Mapping[str, QueueDepth]: ...


class QueueCollector(Collector):
    """`segprune_requests_running` / `_waiting` read from the workers at scrape time, so they are never stale."""

    def __init__(self, source: QueueSource) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        running = GaugeMetricFamily("segprune_requests_running", "Requests being run by the model", labels=["model"])
        waiting = GaugeMetricFamily("segprune_requests_waiting", "Requests queued for the model", labels=["model"])
        for model, worker in list(self.source.workers.items()):
            running.add_metric([model], worker.running)
            waiting.add_metric([model], worker.waiting)
        return [running, waiting]

    def describe(self) -> Iterable[Metric]:
        return self.collect()


class Metrics:
    def __init__(self, settings: Settings, queues: QueueSource) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        # What the default registry would have had: process memory/CPU, Python version, GC.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        registry.register(QueueCollector(queues))

        def histogram(name: str, doc: str, labels: list[str]) -> Histogram:
            return Histogram(name, doc, labels, buckets=LATENCY_BUCKETS, registry=registry)

        by_pruning = ["model", "strategy", "retention"]
        self.prefill = histogram("segprune_prefill_seconds", "LLM (or Whisper decoder) prefill", by_pruning)
        self.ttft = histogram(
            "segprune_time_to_first_token_seconds", "From the start of engine work to the first token", by_pruning
        )
        self.audio_decode = histogram("segprune_audio_decode_seconds", "Audio bytes to 16 kHz samples", ["model"])
        self.features = histogram("segprune_features_seconds", "Samples to log-mel features", ["model"])
        self.encoder = histogram("segprune_encoder_seconds", "Audio encoder forward", ["model"])
        self.scoring = histogram("segprune_scoring_seconds", "Importance scoring and token selection", ["model"])
        self.queue = histogram("segprune_queue_seconds", "Waiting for the model's worker", ["model"])
        self.decode = histogram("segprune_decode_seconds", "All decode steps after the first token", ["model"])
        self.inter_token = histogram("segprune_inter_token_seconds", "Between consecutive generated tokens", ["model"])
        self.e2e = histogram(
            "segprune_e2e_request_seconds", "Whole HTTP request, body upload to last byte", ["model", "endpoint"]
        )
        self.audio_tokens = Counter(
            "segprune_audio_tokens",
            "Audio tokens before pruning (input) and reaching the LLM (kept)",
            ["model", "stage"],
            registry=registry,
        )
        self.prompt_tokens = Counter("segprune_prompt_tokens", "Prompt tokens prefilled", ["model"], registry=registry)
        self.generation_tokens = Counter("segprune_generation_tokens", "Tokens generated", ["model"], registry=registry)
        self.requests = Counter(
            "segprune_requests",
            "Finished inference requests by HTTP status",
            ["model", "endpoint", "status"],
            registry=registry,
        )
        Info("segprune", "Version, served models and default pruning settings", registry=registry).info(
            {
                "version": __version__,
                "models": ",".join(settings.models),
                "served_model_names": ",".join(settings.served_model_names or settings.models),
                "default_retention": retention_label(settings.default_retention),
                "default_strategy": strategy_label(settings.default_strategy),
                "default_segments": str(settings.default_segments),
                "transcription_retention": retention_label(settings.transcription_retention),
            }
        )

    def render(self) -> bytes:
        """The text exposition format (CONTENT_TYPE_LATEST)."""
        return generate_latest(self.registry)

    def record_request(
        self, *, endpoint: str, model: str, status: int, seconds: float, result: GenerationResult | None
    ) -> None:
        """Count one finished request; a successful one also feeds every latency and token metric.

        Stage histograms only see requests that answered 200 with a result, so they agree with the
        `timings` those responses carried.
        """
        self.requests.labels(model, endpoint, str(status)).inc()
        if status != 200 or result is None:
            return
        self.e2e.labels(model, endpoint).observe(seconds)
        self._observe_result(model, result)

    def _observe_result(self, model: str, result: GenerationResult) -> None:
        timings, report = result.timings, result.pruning
        pruning = (model, strategy_label(report.strategy), retention_label(report.retention))
        self.prefill.labels(*pruning).observe(timings.prefill / MS_PER_SECOND)
        self.ttft.labels(*pruning).observe(timings.ttft / MS_PER_SECOND)
        self.queue.labels(model).observe(timings.queue / MS_PER_SECOND)
        self.decode.labels(model).observe(timings.decode / MS_PER_SECOND)
        # A text-only chat has no audio stages: zeros would drag their percentiles down.
        if report.audio_tokens_before > 0 or result.duration > 0:
            self.audio_decode.labels(model).observe(timings.audio_decode / MS_PER_SECOND)
            self.features.labels(model).observe(timings.features / MS_PER_SECOND)
            self.encoder.labels(model).observe(timings.encoder / MS_PER_SECOND)
            self.scoring.labels(model).observe(timings.scoring / MS_PER_SECOND)
        inter_token = self.inter_token.labels(model)
        for gap_ms in result.inter_token_ms:
            inter_token.observe(gap_ms / MS_PER_SECOND)
        self.audio_tokens.labels(model, "input").inc(report.audio_tokens_before)
        self.audio_tokens.labels(model, "kept").inc(report.audio_tokens_kept)
        self.prompt_tokens.labels(model).inc(result.prompt_tokens)
        self.generation_tokens.labels(model).inc(result.completion_tokens)
