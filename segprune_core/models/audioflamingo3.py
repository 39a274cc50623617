"""Audio Flamingo 3 (e.g. nvidia/audio-flamingo-3-hf).

AF3 itself splits audio into 30 s windows (up to 600 s) and places every window's tokens behind
`<sound>` placeholders; pruning here selects across all windows of a clip at once.
"""

from __future__ import annotations

import torch

from segprune_core.models.audio_llm import AudioLLM


class AudioFlamingo3(AudioLLM):
    family = "audioflamingo3"
    placeholder_token = "<sound>"
    transcription_prompt = "Transcribe the input speech."

    def _encode_batch(self, input_features: torch.Tensor, mel_mask: torch.Tensor) -> torch.Tensor:
        return self.audio_tower(input_features, input_features_mask=mel_mask).last_hidden_state
