"""The engine's GenerationResult -> OpenAI response objects (plain dicts, ready for JSON)."""

from __future__ import annotations

import time
import uuid
import zlib
from typing import Any

from segprune_core.request import GenerationResult, TranscriptSegment
from server.protocol import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionDelta,
    ChatCompletionMessage,
    ChatCompletionResponse,
    CompletionUsage,
    PromptTokensDetails,
    PruningInfo,
    TimingsInfo,
    TranscriptionDurationUsage,
    TranscriptionResponse,
    TranscriptionSegment,
    TranscriptionTokenUsage,
    TranscriptionVerboseResponse,
)

ISO_639_1_NAMES = {
    "en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese",
    "nl": "dutch", "ru": "russian", "zh": "chinese", "ja": "japanese", "ko": "korean", "ar": "arabic",
    "hi": "hindi", "pl": "polish", "tr": "turkish", "sv": "swedish", "uk": "ukrainian", "cs": "czech",
}  # fmt: skip


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def pruning_info(result: GenerationResult) -> PruningInfo:
    report = result.pruning
    return PruningInfo(
        strategy=report.strategy,
        retention=report.retention,
        segments=report.segments,
        audio_tokens_before=report.audio_tokens_before,
        audio_tokens_kept=report.audio_tokens_kept,
        windows=report.windows,
        tokens_per_window=list(report.tokens_per_window),
        kept_per_window=list(report.kept_per_window),
    )


def timings_info(result: GenerationResult, audio_decode_ms: float) -> TimingsInfo:
    result.timings.audio_decode = audio_decode_ms
    return TimingsInfo(**result.timings.as_dict())


def finish_reason(result: GenerationResult) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def completion_usage(result: GenerationResult) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(
            audio_tokens=result.audio_tokens, text_tokens=max(0, result.prompt_tokens - result.audio_tokens)
        ),
    )


def chat_completion(result: GenerationResult, *, model: str, audio_decode_ms: float) -> dict[str, Any]:
    response = ChatCompletionResponse(
        id=completion_id(),
        created=now(),
        model=model,
        choices=[
            ChatCompletionChoice(
                message=ChatCompletionMessage(content=result.text), finish_reason=finish_reason(result)
            )
        ],
        usage=completion_usage(result),
        pruning=pruning_info(result),
        timings=timings_info(result, audio_decode_ms),
    )
    return response.model_dump()


class ChunkFactory:
    """Chunks of one streamed completion share id, created and model, as OpenAI's do."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = now()
        self.model = model
        self.include_usage = include_usage

    def _chunk(self, choices: list[ChatCompletionChunkChoice], **extra: Any) -> dict[str, Any]:
        chunk = ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=choices, **extra)
        data = chunk.model_dump(exclude_none=False)
        for choice in data["choices"]:  # a delta carries only the fields that changed
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
        if self.include_usage:
            data.setdefault("usage", None)  # OpenAI: usage is null on every chunk but the last
        return data

    def role(self) -> dict[str, Any]:
        return self._chunk([ChatCompletionChunkChoice(delta=ChatCompletionDelta(role="assistant", content=""))])

    def content(self, text: str) -> dict[str, Any]:
        return self._chunk([ChatCompletionChunkChoice(delta=ChatCompletionDelta(content=text))])

    def finish(self, result: GenerationResult, audio_decode_ms: float) -> dict[str, Any]:
        choice = ChatCompletionChunkChoice(delta=ChatCompletionDelta(), finish_reason=finish_reason(result))
        extras = {"pruning": pruning_info(result), "timings": timings_info(result, audio_decode_ms)}
        return self._chunk([choice], **extras)

    def usage(self, result: GenerationResult) -> dict[str, Any]:
        return self._chunk([], usage=completion_usage(result))


# --- transcription / translation -----------------------------------------------------------------
def transcription_token_usage(result: GenerationResult) -> TranscriptionTokenUsage:
    text_tokens = max(0, result.prompt_tokens - result.audio_tokens)
    return TranscriptionTokenUsage(
        input_tokens=result.prompt_tokens,
        input_token_details={"text_tokens": text_tokens, "audio_tokens": result.audio_tokens},
        output_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
    )


def transcription_json(result: GenerationResult, audio_decode_ms: float) -> dict[str, Any]:
    return TranscriptionResponse(
        text=result.text,
        usage=transcription_token_usage(result),
        pruning=pruning_info(result),
        timings=timings_info(result, audio_decode_ms),
    ).model_dump(exclude_none=True)


def compression_ratio(text: str) -> float:
    """Whisper's repetition check: UTF-8 length over zlib-compressed length."""
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


def verbose_segment(index: int, segment: TranscriptSegment, temperature: float) -> TranscriptionSegment:
    # The engine reports start, end and text; token ids and probabilities only if it provides them.
    return TranscriptionSegment(
        id=index,
        seek=round(segment.start * 100),  # Whisper counts seek in 10 ms mel frames
        start=segment.start,
        end=segment.end,
        text=segment.text,
        tokens=list(getattr(segment, "token_ids", [])),
        temperature=temperature,
        avg_logprob=float(getattr(segment, "avg_logprob", 0.0)),
        compression_ratio=compression_ratio(segment.text),
        no_speech_prob=float(getattr(segment, "no_speech_prob", 0.0)),
    )


def language_name(language: str | None) -> str:
    if not language:
        return "unknown"
    return ISO_639_1_NAMES.get(language.lower(), language.lower())


def transcription_verbose_json(
    result: GenerationResult, *, task: str, language: str | None, temperature: float, audio_decode_ms: float
) -> dict[str, Any]:
    return TranscriptionVerboseResponse(
        task=task,
        language="english" if task == "translate" else language_name(language),
        duration=result.duration,
        text=result.text,
        segments=[verbose_segment(i, s, temperature) for i, s in enumerate(result.segments)],
        usage=TranscriptionDurationUsage(seconds=result.duration),
        pruning=pruning_info(result),
        timings=timings_info(result, audio_decode_ms),
    ).model_dump(exclude_none=True)


def transcript_delta_event(text: str) -> dict[str, Any]:
    return {"type": "transcript.text.delta", "delta": text}


def transcript_done_event(result: GenerationResult, audio_decode_ms: float) -> dict[str, Any]:
    return {
        "type": "transcript.text.done",
        "text": result.text,
        "usage": transcription_token_usage(result).model_dump(exclude_none=True),
        "pruning": pruning_info(result).model_dump(),
        "timings": timings_info(result, audio_decode_ms).model_dump(),
    }
