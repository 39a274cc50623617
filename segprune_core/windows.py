"""Split audio into the 30 s windows Whisper-style encoders see, and compute their log-mel features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from segprune_core.request import SAMPLE_RATE, WINDOW_SECONDS, AudioClip

WINDOW_SAMPLES = SAMPLE_RATE * WINDOW_SECONDS


@dataclass
class WindowFeatures:
    """Log-mel features of every window of every clip, in order (clip 0's windows first)."""

    input_features: torch.Tensor  # [W, mel_bins, 3000]
    mel_mask: torch.Tensor  # [W, 3000] 1 for real frames, 0 for padding
    windows_per_clip: list[int]
    window_starts: list[float]  # seconds from the start of its clip
    window_ends: list[float]

    @property
    def mel_lengths(self) -> torch.Tensor:
        return self.mel_mask.sum(-1).long()


def split_windows(samples: np.ndarray) -> list[np.ndarray]:
    """Consecutive 30 s pieces; the last one may be shorter. Nothing is dropped."""
    return [samples[i : i + WINDOW_SAMPLES] for i in range(0, max(len(samples), 1), WINDOW_SAMPLES)]


def window_features(feature_extractor, clips: list[AudioClip]) -> WindowFeatures:
    """Features for all windows of all clips at once (the extractor pads each window to 30 s)."""
    pieces, counts, starts, ends = [], [], [], []
    for clip in clips:
        windows = split_windows(clip.samples)
        counts.append(len(windows))
        for index, piece in enumerate(windows):
            pieces.append(piece)
            starts.append(index * WINDOW_SECONDS)
            ends.append(index * WINDOW_SECONDS + len(piece) / SAMPLE_RATE)
    extracted = feature_extractor(
        pieces,
        sampling_rate=SAMPLE_RATE,
        padding="max_length",
        return_attention_mask=True,
        return_tensors="pt",
    )
    return WindowFeatures(
        input_features=extracted["input_features"],
        mel_mask=extracted["attention_mask"],
        windows_per_clip=counts,
        window_starts=starts,
        window_ends=ends,
    )


def conv_frames(mel_lengths: torch.Tensor) -> torch.Tensor:
    """Encoder frames after conv2 (stride 2) for a number of valid mel frames."""
    return (mel_lengths - 1) // 2 + 1


def pooled_tokens(mel_lengths: torch.Tensor) -> torch.Tensor:
    """Tokens after AvgPool1d(2), as Qwen2-Audio/AF3 count them (`_get_feat_extract_output_lengths`)."""
    return (conv_frames(mel_lengths) - 2) // 2 + 1
