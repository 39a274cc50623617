"""How concentrated last-layer attention importance is over a clip's speech frames.

Whisper has no padding mask, so queries also attend to the padding after the speech; each query's
attention sums to 1, so `padding_share` = 1 - (importance summed over speech frames) / (speech frames)
is the share of attention mass the speech frames' queries spend on padding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Concentration:
    frames: int
    top10_share: float  # share of the speech frames' total importance held by the top 10 % of them
    top25_share: float
    normalized_entropy: float  # entropy of importance / log(frames): 1 = spread evenly, 0 = one frame
    padding_share: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def top_share(scores: np.ndarray, fraction: float) -> float:
    """Share of the total held by the largest ceil(fraction * N) scores."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    count = max(1, math.ceil(fraction * len(ordered)))
    total = ordered.sum()
    return float(ordered[:count].sum() / total) if total > 0 else 0.0


def normalized_entropy(scores: np.ndarray) -> float:
    values = np.asarray(scores, dtype=np.float64)
    if len(values) < 2 or values.sum() <= 0:
        return 0.0
    p = values / values.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(len(values)))


def concentration(scores: np.ndarray, queries: int) -> Concentration:
    """`scores`: importance of the N speech frames; `queries`: how many queries it was summed over."""
    values = np.asarray(scores, dtype=np.float64)
    return Concentration(
        frames=len(values),
        top10_share=top_share(values, 0.10),
        top25_share=top_share(values, 0.25),
        normalized_entropy=normalized_entropy(values),
        padding_share=float(1.0 - values.sum() / queries) if queries else 0.0,
    )


def largest_gap(kept_indices: np.ndarray, frames: int) -> int:
    """Longest run of dropped frames (before the first kept, between kept ones, or after the last)."""
    kept = np.sort(np.asarray(kept_indices, dtype=np.int64))
    if len(kept) == 0:
        return frames
    edges = np.concatenate([[-1], kept, [frames]])
    return int(np.diff(edges).max() - 1)
