"""Whisper (WhisperForConditionalGeneration) for transcription and translation.

Pruning applies to the encoder output the decoder cross-attends to. Whisper's encoder has no padding
mask, and its decoder expects the padding frames it was trained with (dropping them breaks short
clips: WER 39% -> 117% in DESIGN.md). So the Whisper path scores and prunes only frames that hold real
audio (segments cover the real audio only) and always keeps the padding frames after it.

Long audio is transcribed window by window (30 s each, fixed windows: no seeking back to the last
timestamp, so a word cut by a window boundary may be garbled). Decoding runs in timestamp mode, and
the timestamps become transcript segments offset by the window's start.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import torch
from torch import nn

from segprune_core.decoding import DecodeOutcome, decode_loop
from segprune_core.encoding import EncodedClip, encode_clips
from segprune_core.errors import InvalidRequestError
from segprune_core.models.base import FamilyAdapter
from segprune_core.pruning import KeptTokens, choose_kept_tokens
from segprune_core.request import (
    AudioClip,
    GenerationRequest,
    PruningParams,
    Task,
    TextDelta,
    Timings,
    TranscriptSegment,
)

MAX_PROMPT_TOKENS = 223  # Whisper's limit for <|startofprev|> context: half the 448-token decoder window
TIMESTAMP_SECONDS = 0.02  # one timestamp token step
MAX_INITIAL_TIMESTAMP_INDEX = 50  # the first timestamp is at most 1.0 s, as in OpenAI's decoder


@dataclass
class WindowDecoderInput:
    """What the decoder of one window attends to after pruning."""

    encoder_states: torch.Tensor  # [1, kept + padding frames, D]
    start: float
    end: float


class Whisper(FamilyAdapter):
    family = "whisper"
    tasks = frozenset({Task.TRANSCRIBE, Task.TRANSLATE})

    def __init__(self, model: nn.Module, processor, device: torch.device, encoder_batch_size: int = 8):
        super().__init__(model, processor, device, encoder_batch_size)
        config = model.generation_config
        self.multilingual = bool(getattr(config, "is_multilingual", False))
        self.lang_to_id: dict[str, int] = dict(getattr(config, "lang_to_id", None) or {})
        self.task_to_id: dict[str, int] = dict(getattr(config, "task_to_id", None) or {})
        self.start_id = int(config.decoder_start_token_id)
        self.no_timestamps_id = int(config.no_timestamps_token_id)
        self.timestamp_begin = self.no_timestamps_id + 1
        self.eos_ids = {int(config.eos_token_id)}
        self.suppress_ids = list(getattr(config, "suppress_tokens", None) or [])
        self.begin_suppress_ids = list(getattr(config, "begin_suppress_tokens", None) or [])
        self.max_target_positions = model.config.max_target_positions

    @property
    def encoder(self) -> nn.Module:
        return self.model.model.encoder

    def encode(self, clips: list[AudioClip], timings: Timings) -> list[EncodedClip]:
        return encode_clips(
            clips,
            feature_extractor=self.processor.feature_extractor,
            encoder_call=lambda features, _mask: self.encoder(features).last_hidden_state,
            last_attention=self.encoder.layers[-1].self_attn,
            pooled=False,
            batch_size=self.encoder_batch_size,
            device=self.device,
            dtype=self.encoder.dtype,
            clock=self.clock,
            timings=timings,
        )

    def prune(self, clip: EncodedClip, params: PruningParams, timings: Timings) -> tuple[KeptTokens, list]:
        """Kept real frames (selected over the whole clip) plus every padding frame, per window."""
        kept = choose_kept_tokens(clip, params, self.clock, timings)
        windows, offset = [], 0
        kept_indices = torch.as_tensor(kept.indices)
        for w, n_real in enumerate(clip.tokens_per_window):
            in_window = kept_indices[(kept_indices >= offset) & (kept_indices < offset + n_real)] - offset
            frames = torch.cat([in_window, torch.arange(n_real, clip.hidden.shape[1])]).to(clip.hidden.device)
            windows.append(
                WindowDecoderInput(
                    encoder_states=clip.hidden[w : w + 1, frames],
                    start=clip.window_starts[w],
                    end=clip.window_ends[w],
                )
            )
            offset += n_real
        return kept, windows

    def prompt_ids(self, request: GenerationRequest, encoder_states: torch.Tensor) -> list[int]:
        ids: list[int] = []
        if request.prompt:
            previous = self.tokenizer.convert_tokens_to_ids("<|startofprev|>")
            context = self.tokenizer.encode(" " + request.prompt.strip(), add_special_tokens=False)
            ids += [previous, *context[-MAX_PROMPT_TOKENS:]]
        ids.append(self.start_id)
        if self.multilingual:
            language = request.language or self.detect_language(encoder_states)
            token = self.lang_to_id.get(f"<|{language}|>")
            if token is None:
                raise InvalidRequestError(f"Unsupported language {language!r}.", param="language")
            task = "translate" if request.task is Task.TRANSLATE else "transcribe"
            ids += [token, self.task_to_id[task]]
        elif request.language and request.language.lower() not in ("en", "english"):
            raise InvalidRequestError(
                f"This model is English-only; language {request.language!r} is not supported.", param="language"
            )
        return ids  # no <|notimestamps|>: decoding runs in timestamp mode

    @torch.no_grad()
    def detect_language(self, encoder_states: torch.Tensor) -> str:
        logits = self.model(
            encoder_outputs=(encoder_states,), decoder_input_ids=torch.tensor([[self.start_id]], device=self.device)
        ).logits[0, -1]
        codes = list(self.lang_to_id)
        best = int(torch.argmax(logits[[self.lang_to_id[c] for c in codes]]))
        return codes[best].strip("<|>")

    def timestamp_rules(self, logits: torch.Tensor, generated: list[int]) -> None:
        """Whisper's timestamp grammar (as in OpenAI's reference decoder), applied in place.

        Text comes between pairs of timestamps; timestamps never go back; the first token is a
        timestamp of at most 1 s; when timestamps are likelier in total than any text token, one follows.
        """
        begin, eot = self.timestamp_begin, min(self.eos_ids)
        logits[self.no_timestamps_id] = float("-inf")
        last_was_timestamp = len(generated) >= 1 and generated[-1] >= begin
        penultimate_was_timestamp = len(generated) < 2 or generated[-2] >= begin
        if last_was_timestamp:
            if penultimate_was_timestamp:
                logits[begin:] = float("-inf")  # a segment just closed: text must follow
            else:
                logits[:eot] = float("-inf")  # an opening timestamp: its partner or the end follows
        timestamps = [t for t in generated if t >= begin]
        if timestamps:
            floor = timestamps[-1] if last_was_timestamp and not penultimate_was_timestamp else timestamps[-1] + 1
            logits[begin:floor] = float("-inf")
        if not generated:
            logits[:begin] = float("-inf")
            logits[begin + MAX_INITIAL_TIMESTAMP_INDEX + 1 :] = float("-inf")
        logprobs = torch.log_softmax(logits, dim=-1)
        if torch.logsumexp(logprobs[begin:], dim=-1) > logprobs[:begin].max():
            logits[:begin] = float("-inf")

    def segments(self, token_ids: list[int], window: WindowDecoderInput) -> list[TranscriptSegment]:
        """Timestamped segments of one window, in seconds from the start of the whole audio."""
        begin = self.timestamp_begin
        found: list[TranscriptSegment] = []
        opened: float | None = None
        text_ids: list[int] = []

        def close(end: float) -> None:
            text = self.tokenizer.decode(text_ids, skip_special_tokens=True).strip()
            start = max(opened if opened is not None else 0.0, found[-1].end - window.start if found else 0.0)
            if text:
                seconds = (window.start + start, window.start + max(end, start))
                found.append(TranscriptSegment(seconds[0], min(seconds[1], window.end), text))
            text_ids.clear()

        for token in token_ids:
            if token >= begin:
                time = (token - begin) * TIMESTAMP_SECONDS
                if text_ids:
                    close(time)
                    opened = None
                else:
                    opened = time
            else:
                text_ids.append(token)
        if text_ids:
            close(window.end - window.start)
        return [seg for seg in found if seg.end > seg.start]

    @torch.no_grad()
    def decode_window(
        self, window: WindowDecoderInput, prompt: list[int], request: GenerationRequest, max_tokens: int, should_stop
    ) -> Generator[TextDelta, None, DecodeOutcome]:
        """Timestamp-mode decoding: without timestamps, Whisper tends to stop early on a full 30 s window."""
        state: dict = {"cache": None, "generated": []}
        encoder_outputs = (window.encoder_states,)

        def run(ids: list[int]) -> torch.Tensor:
            out = self.model(
                encoder_outputs=encoder_outputs,
                decoder_input_ids=torch.tensor([ids], device=self.device),
                past_key_values=state["cache"],
                use_cache=True,
            )
            state["cache"] = out.past_key_values
            logits = out.logits[0, -1].float()
            logits[self.suppress_ids] = float("-inf")
            if not state["generated"]:
                logits[self.begin_suppress_ids] = float("-inf")
            self.timestamp_rules(logits, state["generated"])
            return logits

        def step(token: int) -> torch.Tensor:
            state["generated"].append(token)
            return run([token])

        return (
            yield from decode_loop(
                prefill=lambda: run(prompt),
                step=step,
                sampling=request.sampling,
                tokenizer=self.tokenizer,
                eos_ids=self.eos_ids,
                max_tokens=max_tokens,
                clock=self.clock,
                should_stop=should_stop,
            )
        )
