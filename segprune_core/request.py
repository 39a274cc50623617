"""What the engine takes and gives back: plain dataclasses, no HTTP, no torch.

The server translates OpenAI requests into these, and these back into OpenAI responses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000  # every model family here takes 16 kHz mono audio
WINDOW_SECONDS = 30  # Whisper-style encoders see 30 s windows (3000 mel frames)


class Strategy(enum.StrEnum):
    """How kept audio tokens are chosen; see `selection.py`."""

    SEGMENTWISE = "segmentwise"  # the paper: top-k inside each of S equal time segments
    TOPK = "topk"  # global top-k by importance
    BOTTOMK = "bottomk"  # global bottom-k (a sanity baseline: it should be bad)
    RANDOM = "random"  # seeded random k
    UNIFORM = "uniform"  # even stride in time
    NONE = "none"  # keep everything


class Task(enum.StrEnum):
    CHAT = "chat"
    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"


@dataclass(frozen=True)
class PruningParams:
    """Retention r in (0, 1]; `segments` is S per 30 s window (S grows with the number of windows)."""

    retention: float = 0.25
    strategy: Strategy = Strategy.SEGMENTWISE
    segments: int = 10
    fill_remainder: bool = False  # top up to exactly K globally when S does not divide K
    seed: int = 0  # for Strategy.RANDOM

    def __post_init__(self) -> None:
        if not (0.0 < self.retention <= 1.0):
            raise ValueError(f"retention must be in (0, 1], got {self.retention}")
        if self.segments < 1:
            raise ValueError(f"segments must be >= 1, got {self.segments}")
        object.__setattr__(self, "strategy", Strategy(self.strategy))


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # benchmarks: always generate max_tokens so decode timing is comparable


@dataclass(frozen=True)
class AudioClip:
    """16 kHz mono float32 samples."""

    samples: np.ndarray

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True)
class TextPart:
    text: str


ContentPart = TextPart | AudioClip


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: tuple[ContentPart, ...]


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple[Message, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    pruning: PruningParams = field(default_factory=PruningParams)
    task: Task = Task.CHAT
    language: str | None = None  # transcription/translation: ISO-639-1 hint
    prompt: str | None = None  # transcription/translation: text to condition on

    @property
    def audio_clips(self) -> list[AudioClip]:
        return [p for m in self.messages for p in m.content if isinstance(p, AudioClip)]


@dataclass
class PruningReport:
    strategy: str
    retention: float
    segments: int  # total segments used across the whole audio (S per window x windows)
    audio_tokens_before: int
    audio_tokens_kept: int
    windows: int
    tokens_per_window: list[int] = field(default_factory=list)  # valid tokens in each 30 s window
    kept_per_window: list[int] = field(default_factory=list)
    duration: float = 0.0  # seconds of audio in the request


@dataclass
class Timings:
    """Milliseconds per stage. The engine fills what it measures; the server adds queue and decode time."""

    audio_decode: float = 0.0
    features: float = 0.0
    encoder: float = 0.0
    scoring: float = 0.0
    prefill: float = 0.0
    ttft: float = 0.0  # from the start of engine work to the first generated token
    decode: float = 0.0  # all decode steps after the first token
    queue: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.__dict__.items()}


@dataclass
class TranscriptSegment:
    start: float  # seconds
    end: float
    text: str


@dataclass
class GenerationResult:
    text: str
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int  # tokens the LLM (or Whisper decoder) really saw, audio included
    completion_tokens: int
    audio_tokens: int  # kept audio tokens that reached the LLM
    pruning: PruningReport
    timings: Timings
    segments: list[TranscriptSegment] = field(default_factory=list)  # transcription only
    inter_token_ms: list[float] = field(default_factory=list)
    duration: float = 0.0  # seconds of audio in the request


@dataclass(frozen=True)
class TextDelta:
    """One streamed piece of generated text."""

    text: str


StreamEvent = TextDelta | GenerationResult  # the final event is always the GenerationResult
