"""The token loop shared by every model family: prefill once, then sample token by token.

Owning the loop (rather than calling `generate`) lets the engine time prefill and each decode step
separately, stream text as it is produced, honour stop strings, and stop early when a client leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field

import torch

from segprune_core.request import SamplingParams, TextDelta
from segprune_core.timing import Clock


class TokenSampler:
    """Greedy at temperature 0, else temperature + nucleus (top_p) sampling from a seeded generator."""

    def __init__(self, params: SamplingParams) -> None:
        self.temperature = params.temperature
        self.top_p = params.top_p
        self.generator = torch.Generator(device="cpu")
        if params.seed is not None:
            self.generator.manual_seed(params.seed)
        else:
            self.generator.seed()

    def __call__(self, logits: torch.Tensor) -> int:
        logits = logits.float().cpu()
        if self.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            # Keep the smallest prefix whose mass reaches top_p (always at least the best token).
            outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= self.top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=self.generator))


class IncrementalText:
    """Turns generated ids into text deltas; holds back what may still become a stop string or a
    half-decoded UTF-8 character, so streamed text never has to be taken back."""

    def __init__(self, tokenizer, stop: Iterable[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.emitted = 0  # characters of the text already handed out
        self.text = ""
        self.stopped = False

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        # Decoding the whole sequence each time is O(n^2) but n is a few hundred; it gets merges right.
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        for stop in self.stop:
            at = self.text.find(stop)
            if at != -1:
                self.text = self.text[:at]
                self.stopped = True
        return self._release(final=self.stopped)

    def finish(self) -> str:
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        ready = len(self.text)
        if not final:
            if self.text.endswith("\ufffd"):
                ready -= 1
            for stop in self.stop:
                for size in range(min(len(stop) - 1, ready), 0, -1):
                    if self.text[:ready].endswith(stop[:size]):
                        ready -= size
                        break
        delta = self.text[self.emitted : max(ready, self.emitted)]
        self.emitted = max(ready, self.emitted)
        return delta


@dataclass
class DecodeOutcome:
    text: str
    finish_reason: str  # "stop" | "length" | "cancelled"
    token_ids: list[int]
    prefill_ms: float
    first_token_at: float  # Clock time the first token was sampled
    decode_ms: float  # decode steps after the first token
    inter_token_ms: list[float] = field(default_factory=list)


def decode_loop(
    *,
    prefill: Callable[[], torch.Tensor],
    step: Callable[[int], torch.Tensor],
    sampling: SamplingParams,
    tokenizer,
    eos_ids: set[int] | frozenset[int],
    max_tokens: int,
    clock: Clock,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[TextDelta, None, DecodeOutcome]:
    """prefill() -> logits of the next token; step(token) feeds one token and returns the next logits.

    Yields TextDelta as text becomes final; returns the DecodeOutcome (via StopIteration.value).
    `max_tokens` may be lower than sampling.max_tokens (Whisper's per-window budget).
    """
    sampler = TokenSampler(sampling)
    text = IncrementalText(tokenizer, sampling.stop)
    if sampling.ignore_eos:
        eos_ids = frozenset()
    start = clock.now()
    logits = prefill()
    prefill_ms = clock.since(start)
    first_token_at = 0.0
    inter_token: list[float] = []
    finish = "length"
    last = clock.now()
    decode_start = last
    for index in range(max_tokens):
        token = sampler(logits)
        now = clock.now()
        if index == 0:
            first_token_at = decode_start = now
        else:
            inter_token.append((now - last) * 1000.0)
        last = now
        if token in eos_ids:
            finish = "stop"
            break
        delta = text.push(token)
        if delta:
            yield TextDelta(delta)
        if text.stopped:
            finish = "stop"
            break
        if should_stop is not None and should_stop():
            finish = "cancelled"
            break
        if index + 1 < max_tokens:
            logits = step(token)
    tail = text.finish()
    if tail:
        yield TextDelta(tail)
    return DecodeOutcome(
        text=text.text,
        finish_reason=finish,
        token_ids=list(text.ids),
        prefill_ms=prefill_ms,
        first_token_at=first_token_at or clock.now(),
        decode_ms=(last - decode_start) * 1000.0,
        inter_token_ms=inter_token,
    )
