"""OpenAI wire format, field by field, plus segprune's `pruning` and `timings` additions.

Request models reject unknown fields (as OpenAI does), so a misspelled `prunning` is a 400 rather
than a silently ignored setting. OpenAI fields segprune cannot honour are accepted here and refused
with a clear 400 in the route only when set to something other than their neutral value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from segprune_core.request import Strategy


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """Response objects: extra keys are allowed, as in OpenAI's schemas."""

    model_config = ConfigDict(extra="allow")


# --- segprune's pruning control ---------------------------------------------------------------------
class PruningOptions(Strict):
    retention: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = Field(
        None, description="Fraction of audio tokens to keep, in (0, 1]."
    )
    strategy: Strategy | None = Field(None, description="How kept tokens are chosen.")
    segments: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        None, description="Segments per 30 s window (segmentwise strategy)."
    )


# --- chat completion request ------------------------------------------------------------------------
class TextContentPart(Strict):
    type: Literal["text"]
    text: str


class InputAudio(Strict):
    data: str = Field(description="Base64-encoded audio file bytes.")
    format: str = Field(description="wav, mp3, flac, ogg, ...; the container is sniffed from the bytes.")


class InputAudioContentPart(Strict):
    type: Literal["input_audio"]
    input_audio: InputAudio


class AudioUrl(Strict):
    url: str = Field(description="A data: URI (base64), or an http(s) URL when the server allows it.")


class AudioUrlContentPart(Strict):
    type: Literal["audio_url"]
    audio_url: AudioUrl


ContentPart = Annotated[TextContentPart | InputAudioContentPart | AudioUrlContentPart, Field(discriminator="type")]


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    refusal: str | None = None  # assistant turns echoed back by clients


class StreamOptions(Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # accepted; segprune sends no obfuscation field


class ChatCompletionRequest(Strict):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    seed: int | None = None
    stop: str | list[str] | None = Field(None, description="Up to 4 sequences where generation stops.")
    n: Annotated[int, Field(ge=1, le=128)] | None = Field(None, description="Only 1 is supported.")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    pruning: PruningOptions | None = Field(None, description="segprune: audio-token pruning for this request.")

    # OpenAI fields with no effect on a single greedy/sampled choice: accepted and ignored.
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    parallel_tool_calls: bool | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # OpenAI fields segprune cannot honour: 400 unless neutral (see routes/chat.py).
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None


# --- chat completion response -----------------------------------------------------------------------
class PromptTokensDetails(Open):
    audio_tokens: int = 0
    cached_tokens: int = 0
    text_tokens: int = 0


class CompletionUsage(Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


class PruningInfo(Open):
    strategy: str
    retention: float
    segments: int
    audio_tokens_before: int
    audio_tokens_kept: int
    windows: int
    tokens_per_window: list[int] = Field(default_factory=list)
    kept_per_window: list[int] = Field(default_factory=list)


class TimingsInfo(Open):
    """Milliseconds per stage; `queue` is the wait before the model's worker took the request."""

    audio_decode: float = 0.0
    features: float = 0.0
    encoder: float = 0.0
    scoring: float = 0.0
    prefill: float = 0.0
    ttft: float = 0.0
    decode: float = 0.0
    queue: float = 0.0


class ChatCompletionMessage(Open):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None


FinishReason = Literal["stop", "length"]


class ChatCompletionChoice(Open):
    index: int = 0
    message: ChatCompletionMessage
    logprobs: None = None
    finish_reason: FinishReason


class ChatCompletionResponse(Open):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: CompletionUsage
    pruning: PruningInfo | None = None
    timings: TimingsInfo | None = None


class ChatCompletionDelta(Open):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatCompletionChunkChoice(Open):
    index: int = 0
    delta: ChatCompletionDelta
    logprobs: None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(Open):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]


# --- audio ------------------------------------------------------------------------------------------
ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


class TranscriptionTokenUsage(Open):
    type: Literal["tokens"] = "tokens"
    input_tokens: int
    input_token_details: dict[str, int] | None = None
    output_tokens: int
    total_tokens: int


class TranscriptionDurationUsage(Open):
    type: Literal["duration"] = "duration"
    seconds: float


class TranscriptionResponse(Open):
    text: str
    usage: TranscriptionTokenUsage | None = None
    pruning: PruningInfo | None = None
    timings: TimingsInfo | None = None


class TranscriptionSegment(Open):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class TranscriptionVerboseResponse(Open):
    task: Literal["transcribe", "translate"]
    language: str
    duration: float
    text: str
    segments: list[TranscriptionSegment]
    usage: TranscriptionDurationUsage | None = None
    pruning: PruningInfo | None = None
    timings: TimingsInfo | None = None


# --- models -----------------------------------------------------------------------------------------
class ModelCard(Open):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "segprune"
    family: str | None = None
    tasks: list[str] = Field(default_factory=list)


class ModelList(Open):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- errors -----------------------------------------------------------------------------------------
class ErrorDetail(Open):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(Open):
    error: ErrorDetail
