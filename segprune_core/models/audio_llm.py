"""What Qwen2-Audio and Audio Flamingo 3 share: Whisper-style encoder -> pooled audio tokens ->
projector -> LLM, with audio placeholders in the prompt. Family modules fill in the differences.

The pruned path, per request:
  windows of 30 s -> encoder in micro-batches (+ last-layer importance) -> valid tokens of each clip,
  concatenated in time -> kept indices (selection.py) -> projector on kept tokens only ->
  prompt with exactly as many placeholders as kept tokens -> LLM prefill on inputs_embeds -> decode.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import torch
from torch import nn

from segprune_core.decoding import DecodeOutcome, decode_loop
from segprune_core.encoding import EncodedClip, encode_clips
from segprune_core.models.base import FamilyAdapter
from segprune_core.pruning import KeptTokens, choose_kept_tokens
from segprune_core.request import (
    AudioClip,
    GenerationRequest,
    Message,
    PruningParams,
    Task,
    TextDelta,
    TextPart,
    Timings,
)


@dataclass
class PrunedClip:
    features: torch.Tensor  # [K, D_llm] projected kept tokens, ready for the LLM
    kept: KeptTokens
    encoded: EncodedClip


@dataclass
class PreparedPrompt:
    input_ids: torch.Tensor  # [1, L] with placeholders expanded to the kept counts
    inputs_embeds: torch.Tensor  # [1, L, D_llm] audio features scattered in


class AudioLLM(FamilyAdapter):
    """Base for Whisper-encoder ALMs. Subclasses set the class attributes and `_encode_batch`."""

    family: str = ""
    placeholder_token: str = ""  # one per audio in the rendered chat template
    transcription_prompt: str = "Transcribe the speech in this audio. Output only the transcript."
    translation_prompt: str = "Translate the speech in this audio into English. Output only the translation."
    tasks = frozenset({Task.CHAT, Task.TRANSCRIBE, Task.TRANSLATE})

    def __init__(self, model: nn.Module, processor, device: torch.device, encoder_batch_size: int = 8):
        super().__init__(model, processor, device, encoder_batch_size)
        self.placeholder_id = self.tokenizer.convert_tokens_to_ids(self.placeholder_token)
        if self.placeholder_id is None or self.placeholder_id == self.tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no audio placeholder token {self.placeholder_token!r}")
        self.eos_ids = _eos_ids(model, self.tokenizer)

    @property
    def context_length(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    # --- family specifics -------------------------------------------------------------------------
    @property
    def audio_tower(self) -> nn.Module:
        return self.model.model.audio_tower

    def _encode_batch(self, input_features: torch.Tensor, mel_mask: torch.Tensor) -> torch.Tensor:
        """Encoder forward for a micro-batch of windows -> pooled hidden states [B, T_tok, D]."""
        raise NotImplementedError

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.model.multi_modal_projector(hidden)

    # --- audio: encode, score, prune ----------------------------------------------------------------
    def encode(self, clips: list[AudioClip], timings: Timings) -> list[EncodedClip]:
        return encode_clips(
            clips,
            feature_extractor=self.processor.feature_extractor,
            encoder_call=self._encode_batch,
            last_attention=self.audio_tower.layers[-1].self_attn,
            pooled=True,
            batch_size=self.encoder_batch_size,
            device=self.device,
            dtype=self.audio_tower.dtype,
            clock=self.clock,
            timings=timings,
        )

    @torch.no_grad()
    def prune(self, clip: EncodedClip, params: PruningParams, timings: Timings) -> PrunedClip:
        """Choose kept tokens over the whole clip, then run the projector on those only."""
        kept = choose_kept_tokens(clip, params, self.clock, timings)
        hidden = clip.valid_hidden()[torch.as_tensor(kept.indices, device=clip.hidden.device)]
        return PrunedClip(features=self.project(hidden), kept=kept, encoded=clip)

    # --- prompt ---------------------------------------------------------------------------------------
    def conversation(self, request: GenerationRequest) -> list[dict]:
        """Chat-template conversation; for transcription/translation the ASR prompt is added here."""
        messages = list(request.messages)
        if request.task is not Task.CHAT:
            instruction = self.transcription_prompt if request.task is Task.TRANSCRIBE else self.translation_prompt
            if request.language and request.task is Task.TRANSCRIBE:
                instruction += f" The speech is in language '{request.language}'."
            if request.prompt:
                instruction += f" Context: {request.prompt}"
            clips = tuple(p for m in messages for p in m.content if isinstance(p, AudioClip))
            messages = [Message("user", (*clips, TextPart(instruction)))]
        return [_template_message(m) for m in messages]

    def prepare_prompt(self, request: GenerationRequest, pruned: list[PrunedClip]) -> PreparedPrompt:
        text = self.processor.apply_chat_template(
            self.conversation(request), add_generation_prompt=True, tokenize=False
        )
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        placeholder_positions = [i for i, t in enumerate(ids) if t == self.placeholder_id]
        if len(placeholder_positions) != len(pruned):
            raise RuntimeError(
                f"chat template rendered {len(placeholder_positions)} audio placeholders for {len(pruned)} clips"
            )
        # Expand each single placeholder into exactly as many as that clip keeps tokens.
        expanded: list[int] = []
        previous = 0
        for position, clip in zip(placeholder_positions, pruned, strict=True):
            expanded += ids[previous:position] + [self.placeholder_id] * clip.features.shape[0]
            previous = position + 1
        expanded += ids[previous:]
        input_ids = torch.tensor([expanded], device=self.device)
        embeds = self.model.get_input_embeddings()(input_ids)
        if pruned:
            audio = torch.cat([p.features for p in pruned]).to(embeds.dtype)
            mask = (input_ids == self.placeholder_id).unsqueeze(-1).expand_as(embeds)
            embeds = embeds.masked_scatter(mask, audio)
        return PreparedPrompt(input_ids=input_ids, inputs_embeds=embeds)

    # --- LLM ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(
        self, prompt: PreparedPrompt, request: GenerationRequest, should_stop=None
    ) -> Generator[TextDelta, None, DecodeOutcome]:
        language_model = self.model.model.language_model
        lm_head = self.model.lm_head
        state: dict = {"cache": None, "length": prompt.input_ids.shape[1]}

        def run(**inputs) -> torch.Tensor:
            mask = torch.ones(1, state["length"], dtype=torch.long, device=self.device)
            out = language_model(attention_mask=mask, past_key_values=state["cache"], use_cache=True, **inputs)
            state["cache"] = out.past_key_values
            # Only the last position's logits are needed: a full-vocab projection of the prompt is waste.
            return lm_head(out.last_hidden_state[:, -1])[0]

        def step(token: int) -> torch.Tensor:
            state["length"] += 1
            return run(input_ids=torch.tensor([[token]], device=self.device))

        return (
            yield from decode_loop(
                prefill=lambda: run(inputs_embeds=prompt.inputs_embeds),
                step=step,
                sampling=request.sampling,
                tokenizer=self.tokenizer,
                eos_ids=self.eos_ids,
                max_tokens=request.sampling.max_tokens,
                clock=self.clock,
                should_stop=should_stop,
            )
        )


def _template_message(message: Message) -> dict:
    parts = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        else:
            # Templates differ in how they test for audio; this shape satisfies the known ones.
            parts.append({"type": "audio", "audio": "<audio>", "audio_url": "<audio>"})
    return {"role": message.role, "content": parts}


def _eos_ids(model: nn.Module, tokenizer) -> set[int]:
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
