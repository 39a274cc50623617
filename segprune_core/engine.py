"""The engine: load a model once, run one request at a time, time every stage, stream tokens.

Not thread-safe: the server gives each Engine exactly one worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import torch
from transformers import (
    AudioFlamingo3ForConditionalGeneration,
    AutoConfig,
    AutoProcessor,
    Qwen2AudioForConditionalGeneration,
    WhisperForConditionalGeneration,
)

from segprune_core.decoding import DecodeOutcome
from segprune_core.errors import AudioTooLongError, InvalidRequestError, UnsupportedTaskError
from segprune_core.models.audio_llm import AudioLLM
from segprune_core.models.audioflamingo3 import AudioFlamingo3
from segprune_core.models.qwen2_audio import Qwen2Audio
from segprune_core.models.whisper import Whisper
from segprune_core.request import (
    GenerationRequest,
    GenerationResult,
    PruningReport,
    StreamEvent,
    Task,
    TextDelta,
    Timings,
    TranscriptSegment,
)
from segprune_core.timing import Clock

# model_type in config.json -> (transformers class, segprune adapter, longest audio the family takes)
FAMILIES: dict[str, tuple[type, type, float]] = {
    "qwen2_audio": (Qwen2AudioForConditionalGeneration, Qwen2Audio, float("inf")),
    "audioflamingo3": (AudioFlamingo3ForConditionalGeneration, AudioFlamingo3, 600.0),  # AF3's own limit
    "whisper": (WhisperForConditionalGeneration, Whisper, float("inf")),
}

ShouldStop = Callable[[], bool] | None


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on CUDA where supported (fp16 otherwise), fp32 on CPU."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    names |= {"float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r} (choose auto, float32, bfloat16, float16)")
    return names[dtype]


def resolve_model_path(model: str) -> str:
    """A demo id is built offline into the cache on first use; anything else goes to from_pretrained."""
    from segprune_core import demo_models

    if demo_models.is_demo_model_id(model):
        return str(demo_models.ensure_demo_model(model))
    return model


class Engine:
    def __init__(self, name: str, adapter: AudioLLM | Whisper, max_audio_seconds: float) -> None:
        self.name = name
        self.adapter = adapter
        self.family: str = adapter.family
        self.tasks: frozenset[Task] = adapter.tasks
        self.max_audio_seconds = max_audio_seconds
        self.device = adapter.device
        self.clock = Clock(adapter.device)
        self.created = int(time.time())

    @classmethod
    def load(
        cls,
        model: str,
        *,
        served_name: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        encoder_batch_size: int = 8,
        max_audio_seconds: float = 600.0,
    ) -> Engine:
        path = resolve_model_path(model)
        model_type = AutoConfig.from_pretrained(path).model_type
        if model_type not in FAMILIES:
            raise ValueError(f"{model}: unsupported model type {model_type!r} (supported: {', '.join(FAMILIES)})")
        model_class, adapter_class, family_limit = FAMILIES[model_type]
        torch_device = resolve_device(device)
        loaded = model_class.from_pretrained(path, dtype=resolve_dtype(dtype, torch_device)).to(torch_device)
        processor = AutoProcessor.from_pretrained(path)
        adapter = adapter_class(loaded, processor, torch_device, encoder_batch_size)
        name = served_name or (model if not Path(model).exists() else Path(model).resolve().name)
        return cls(name, adapter, min(max_audio_seconds, family_limit))

    # --- public API ---------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest, should_stop: ShouldStop = None) -> GenerationResult:
        for event in self.stream(request, should_stop):
            if isinstance(event, GenerationResult):
                return event
        raise RuntimeError("engine stream ended without a result")

    def stream(self, request: GenerationRequest, should_stop: ShouldStop = None) -> Iterator[StreamEvent]:
        """Yields TextDelta pieces, then exactly one GenerationResult."""
        self.validate(request)
        if isinstance(self.adapter, Whisper):
            return self._run_whisper(request, should_stop)
        return self._run_audio_llm(request, should_stop)

    def validate(self, request: GenerationRequest) -> None:
        if request.task not in self.tasks:
            raise UnsupportedTaskError(
                f"Model '{self.name}' ({self.family}) cannot do {request.task.value}; it supports "
                f"{', '.join(sorted(t.value for t in self.tasks))}.",
                param="model",
            )
        if request.sampling.max_tokens < 1:
            raise InvalidRequestError("max_tokens must be at least 1.", param="max_tokens")
        for clip in request.audio_clips:
            if clip.duration > self.max_audio_seconds:
                raise AudioTooLongError(
                    f"The audio lasts {clip.duration:.1f} s, longer than the maximum of "
                    f"{self.max_audio_seconds:g} s for model '{self.name}'.",
                    param="messages" if request.task is Task.CHAT else "file",
                )
        if request.task is not Task.CHAT and len(request.audio_clips) != 1:
            raise InvalidRequestError("Transcription and translation take exactly one audio file.", param="file")

    def _check_context(self, prompt_tokens: int, request: GenerationRequest) -> None:
        """Like OpenAI: a prompt plus max_tokens beyond the model's context is a 400, not a silent overflow."""
        limit = self.adapter.context_length
        if prompt_tokens + request.sampling.max_tokens > limit:
            raise InvalidRequestError(
                f"This model's maximum context length is {limit} tokens; the prompt holds {prompt_tokens} "
                f"(audio tokens after pruning included) and max_tokens asks for {request.sampling.max_tokens}. "
                "Lower the retention, shorten the audio, or lower max_tokens.",
                param="messages",
                code="context_length_exceeded",
            )

    # --- families -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def _run_audio_llm(self, request: GenerationRequest, should_stop: ShouldStop) -> Generator[StreamEvent]:
        adapter: AudioLLM = self.adapter  # type: ignore[assignment]
        timings, start = Timings(), self.clock.now()
        encoded = adapter.encode(request.audio_clips, timings) if request.audio_clips else []
        pruned = [adapter.prune(clip, request.pruning, timings) for clip in encoded]
        prompt = adapter.prepare_prompt(request, pruned)
        self._check_context(prompt.input_ids.shape[1], request)
        outcome = yield from adapter.decode(prompt, request, should_stop)
        report = _report(request, [p.kept for p in pruned], [p.encoded for p in pruned])
        duration = sum(c.duration for c in request.audio_clips)
        segments = [TranscriptSegment(0.0, duration, outcome.text.strip())] if request.task is not Task.CHAT else []
        report.duration = duration
        text = outcome.text.strip() if request.task is not Task.CHAT else outcome.text
        yield self._result(text, outcome, [outcome], prompt.input_ids.shape[1], report, timings, start, segments)

    @torch.inference_mode()
    def _run_whisper(self, request: GenerationRequest, should_stop: ShouldStop) -> Generator[StreamEvent]:
        adapter: Whisper = self.adapter  # type: ignore[assignment]
        timings, start = Timings(), self.clock.now()
        (encoded,) = adapter.encode(request.audio_clips, timings)
        kept, windows = adapter.prune(encoded, request.pruning, timings)
        outcomes: list[DecodeOutcome] = []
        segments: list[TranscriptSegment] = []
        prompt_tokens, streamed = 0, ""
        for window in windows:
            prompt = adapter.prompt_ids(request, window.encoder_states)
            prompt_tokens += len(prompt)
            budget = min(request.sampling.max_tokens, adapter.max_target_positions - len(prompt))
            decoding = adapter.decode_window(window, prompt, request, budget, should_stop)
            while True:
                try:
                    delta = next(decoding)
                except StopIteration as done:
                    outcomes.append(done.value)
                    break
                # Windows are joined by the space Whisper puts before words; the very first is dropped.
                text = delta.text if streamed else delta.text.lstrip()
                if text:
                    streamed += text
                    yield TextDelta(text)
            segments += adapter.segments(outcomes[-1].token_ids, window)
            if outcomes[-1].finish_reason == "cancelled":
                break
        report = _report(request, [kept], [encoded])
        report.duration = request.audio_clips[0].duration
        # The final text is exactly what was streamed, so streaming and non-streaming clients agree.
        yield self._result(
            streamed, outcomes[-1], outcomes, prompt_tokens + kept.indices.size, report, timings, start, segments
        )

    def _result(
        self,
        text: str,
        last: DecodeOutcome,
        outcomes: list[DecodeOutcome],
        prompt_tokens: int,
        report: PruningReport,
        timings: Timings,
        start: float,
        segments: list[TranscriptSegment],
    ) -> GenerationResult:
        timings.prefill = sum(o.prefill_ms for o in outcomes)
        timings.decode = sum(o.decode_ms for o in outcomes)
        timings.ttft = (outcomes[0].first_token_at - start) * 1000.0
        return GenerationResult(
            text=text,
            finish_reason=last.finish_reason,
            prompt_tokens=int(prompt_tokens),
            completion_tokens=sum(len(o.token_ids) for o in outcomes),
            audio_tokens=report.audio_tokens_kept,
            pruning=report,
            timings=timings,
            segments=segments,
            inter_token_ms=[ms for o in outcomes for ms in o.inter_token_ms],
            duration=report.duration,
        )


def _report(request: GenerationRequest, kept: list, encoded: list) -> PruningReport:
    params = request.pruning
    return PruningReport(
        strategy=params.strategy.value,
        retention=params.retention,
        segments=sum(k.segments for k in kept),
        audio_tokens_before=sum(k.tokens_before for k in kept),
        audio_tokens_kept=sum(int(k.indices.size) for k in kept),
        windows=sum(len(e.tokens_per_window) for e in encoded),
        tokens_per_window=[n for e in encoded for n in e.tokens_per_window],
        kept_per_window=[n for k in kept for n in k.kept_per_window],
    )
