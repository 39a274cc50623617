"""Token selection: per-token importance scores -> indices of the audio tokens to keep.

Every function returns a sorted 1-D int64 numpy array (kept tokens stay in temporal order).
K = floor(r * N) for retention r and N tokens, but at least 1 token is always kept.
"""

from __future__ import annotations

import math

import numpy as np

from segprune_core.request import PruningParams, Strategy


def kept_count(num_tokens: int, retention: float) -> int:
    """K = floor(r * N), at least 1 when there is any token (a clip never vanishes entirely)."""
    if num_tokens <= 0:
        return 0
    # The epsilon keeps r*N that is an integer in exact arithmetic (0.3 * 10) from flooring one low.
    return max(1, min(num_tokens, math.floor(retention * num_tokens + 1e-9)))


def segment_bounds(num_tokens: int, num_segments: int) -> np.ndarray:
    """Boundaries of S equal contiguous segments over N tokens: S+1 ints from 0 to N.

    S is clamped to N, so no segment is empty.
    """
    num_segments = max(1, min(num_segments, num_tokens))
    return np.floor(np.arange(num_segments + 1) * num_tokens / num_segments).astype(np.int64)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores; ties broken by earlier position (stable, deterministic)."""
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    return order[:k].astype(np.int64)


def segmentwise(scores: np.ndarray, retention: float, num_segments: int, fill_remainder: bool = False) -> np.ndarray:
    """The paper's Segmentwise Top-K: split N tokens into S equal segments, keep top floor(K/S) of each.

    A segment shorter than its quota keeps all its tokens. When floor(K/S) is 0
    (K < S), the K best segments by their best token each keep that token, so K tokens are still kept.
    `fill_remainder` tops up to exactly K with the best remaining tokens anywhere.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    k = kept_count(n, retention)
    bounds = segment_bounds(n, num_segments)
    s = len(bounds) - 1
    quota = k // s
    kept: list[np.ndarray] = []
    if quota == 0:
        # Fewer tokens to keep than segments: give one token each to the K segments whose best is best.
        best_per_segment = np.array([bounds[i] + np.argmax(scores[bounds[i] : bounds[i + 1]]) for i in range(s)])
        chosen = _top(scores[best_per_segment], k)
        kept.append(best_per_segment[chosen])
    else:
        for i in range(s):
            lo, hi = bounds[i], bounds[i + 1]
            kept.append(lo + _top(scores[lo:hi], min(quota, hi - lo)))
    selected = np.concatenate(kept) if kept else np.empty(0, dtype=np.int64)
    if fill_remainder and len(selected) < k:
        remaining = np.setdiff1d(np.arange(n), selected)
        extra = remaining[_top(scores[remaining], k - len(selected))]
        selected = np.concatenate([selected, extra])
    return np.sort(selected).astype(np.int64)


def topk(scores: np.ndarray, retention: float) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    return np.sort(_top(scores, kept_count(len(scores), retention)))


def bottomk(scores: np.ndarray, retention: float) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    return np.sort(_top(-scores, kept_count(len(scores), retention)))


def random_k(num_tokens: int, retention: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chosen = rng.choice(num_tokens, size=kept_count(num_tokens, retention), replace=False)
    return np.sort(chosen).astype(np.int64)


def uniform(num_tokens: int, retention: float) -> np.ndarray:
    """K tokens at an even stride: the centre of each of K equal slices of time."""
    k = kept_count(num_tokens, retention)
    if k == 0:
        return np.empty(0, dtype=np.int64)
    return np.floor((np.arange(k) + 0.5) * num_tokens / k).astype(np.int64)


def select_tokens(scores: np.ndarray, params: PruningParams, num_segments: int | None = None) -> np.ndarray:
    """Dispatch on the strategy. `num_segments` overrides params.segments (e.g. S scaled by windows).

    Retention 1.0 keeps every token whatever the strategy: the paper's floor(K/S) per segment would
    otherwise drop up to S-1 tokens when S does not divide N, and r = 1 must equal the unpruned model.
    """
    n = len(scores)
    if params.retention >= 1.0:
        return np.arange(n, dtype=np.int64)
    segments = num_segments if num_segments is not None else params.segments
    match params.strategy:
        case Strategy.SEGMENTWISE:
            return segmentwise(scores, params.retention, segments, params.fill_remainder)
        case Strategy.TOPK:
            return topk(scores, params.retention)
        case Strategy.BOTTOMK:
            return bottomk(scores, params.retention)
        case Strategy.RANDOM:
            return random_k(n, params.retention, params.seed)
        case Strategy.UNIFORM:
            return uniform(n, params.retention)
        case Strategy.NONE:
            return np.arange(n, dtype=np.int64)
    raise ValueError(f"unknown strategy {params.strategy!r}")
