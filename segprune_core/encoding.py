"""Encode clips window by window in micro-batches, scoring every token by last-layer attention.

Shared by all model families; they differ only in the encoder call and whether frames are pooled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from segprune_core.importance import pool_pairs, record_last_layer_importance
from segprune_core.request import AudioClip, Timings
from segprune_core.timing import Clock
from segprune_core.windows import conv_frames, pooled_tokens, window_features

EncoderCall = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (features, mel_mask) -> [B, T, D]


@dataclass
class EncodedClip:
    """One clip's audio tokens before pruning, in time order.

    `hidden` holds the full padded output of every window ([W, T, D]); `tokens_per_window` says how
    many leading tokens of each window are real audio. `scores` covers only those real tokens,
    concatenated over windows ([N]).
    """

    hidden: torch.Tensor
    scores: torch.Tensor
    tokens_per_window: list[int]
    window_starts: list[float]
    window_ends: list[float]

    @property
    def num_tokens(self) -> int:
        return int(self.scores.shape[0])

    def valid_hidden(self) -> torch.Tensor:
        """[N, D]: the real tokens of all windows, concatenated in time."""
        return torch.cat([self.hidden[w, :n] for w, n in enumerate(self.tokens_per_window)])


@torch.no_grad()
def encode_clips(
    clips: list[AudioClip],
    *,
    feature_extractor,
    encoder_call: EncoderCall,
    last_attention: nn.Module,
    pooled: bool,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    clock: Clock,
    timings: Timings,
) -> list[EncodedClip]:
    """pooled=True for encoders ending in AvgPool1d(2) (Qwen2-Audio, AF3); False for plain Whisper."""
    start = clock.now()
    features = window_features(feature_extractor, clips)
    timings.features += clock.since(start)

    mel_lengths = features.mel_lengths
    counts = (pooled_tokens(mel_lengths) if pooled else conv_frames(mel_lengths)).clamp(min=0).tolist()
    hidden_batches, score_rows = [], []
    for lo in range(0, len(counts), batch_size):
        hi = min(lo + batch_size, len(counts))
        valid_frames = conv_frames(mel_lengths[lo:hi]).to(device)
        start = clock.now()
        with record_last_layer_importance(last_attention, valid_frames, clock) as recorder:
            hidden = encoder_call(features.input_features[lo:hi].to(device, dtype), features.mel_mask[lo:hi].to(device))
        # The importance hook runs inside the encoder call; its time counts as scoring, not encoder.
        timings.encoder += clock.since(start) - recorder.elapsed_ms
        start = clock.now()
        scores = pool_pairs(recorder.frame_scores) if pooled else recorder.frame_scores
        timings.scoring += clock.since(start) + recorder.elapsed_ms
        hidden_batches.append(hidden)
        score_rows += [scores[row, : counts[lo + row]] for row in range(hi - lo)]
    hidden_all = torch.cat(hidden_batches)

    encoded, first = [], 0
    for n_windows in features.windows_per_clip:
        window_range = slice(first, first + n_windows)
        encoded.append(
            EncodedClip(
                hidden=hidden_all[window_range],
                scores=torch.cat(score_rows[window_range]),
                tokens_per_window=counts[window_range],
                window_starts=features.window_starts[window_range],
                window_ends=features.window_ends[window_range],
            )
        )
        first += n_windows
    return encoded
