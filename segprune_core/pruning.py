"""Apply a selection strategy to one encoded clip: which of its N real tokens reach the model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segprune_core.encoding import EncodedClip
from segprune_core.errors import InvalidRequestError
from segprune_core.request import PruningParams, Timings
from segprune_core.selection import select_tokens
from segprune_core.timing import Clock


@dataclass
class KeptTokens:
    indices: np.ndarray  # [K] sorted positions among the clip's N real tokens
    tokens_before: int
    segments: int  # segments actually used over the whole clip
    kept_per_window: list[int]


def choose_kept_tokens(clip: EncodedClip, params: PruningParams, clock: Clock, timings: Timings) -> KeptTokens:
    """S grows with duration: `params.segments` per 30 s window, so every part of long audio keeps tokens."""
    n = clip.num_tokens
    if n == 0:
        raise InvalidRequestError("The audio is too short to produce any audio token (minimum ~40 ms).")
    segments = min(params.segments * len(clip.tokens_per_window), n)
    start = clock.now()
    kept = select_tokens(clip.scores.float().cpu().numpy(), params, num_segments=segments)
    timings.scoring += clock.since(start)
    bounds = np.cumsum([0, *clip.tokens_per_window])
    kept_per_window = np.searchsorted(kept, bounds[1:]) - np.searchsorted(kept, bounds[:-1])
    return KeptTokens(kept, n, segments, kept_per_window.tolist())
