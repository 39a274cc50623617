"""Qwen2-Audio (e.g. Qwen/Qwen2-Audio-7B-Instruct).

Stock transformers pads every clip to one 30 s window and silently truncates longer audio; here the
audio is encoded in 30 s windows and the kept tokens of all windows form ONE `<|AUDIO|>` span, which
goes beyond what the model was trained on (at most 750 tokens per clip) for audio over 30 s.
"""

from __future__ import annotations

import torch
from transformers.masking_utils import create_bidirectional_mask

from segprune_core.models.audio_llm import AudioLLM
from segprune_core.windows import conv_frames


class Qwen2Audio(AudioLLM):
    family = "qwen2_audio"
    placeholder_token = "<|AUDIO|>"

    def _encode_batch(self, input_features: torch.Tensor, mel_mask: torch.Tensor) -> torch.Tensor:
        # The same key-padding mask Qwen2AudioModel.forward builds: padded frames receive no attention.
        frames = input_features.shape[-1] // 2
        valid = conv_frames(mel_mask.sum(-1))
        frame_mask = (torch.arange(frames, device=mel_mask.device)[None, :] < valid[:, None]).long()
        attention_mask = create_bidirectional_mask(
            config=self.audio_tower.config,
            inputs_embeds=torch.zeros(len(valid), frames, 1, dtype=input_features.dtype, device=self.device),
            attention_mask=frame_mask,
        )
        return self.audio_tower(input_features, attention_mask=attention_mask).last_hidden_state
