"""Property tests of the selection strategies (pure functions, no model)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segprune_core.request import PruningParams, Strategy
from segprune_core.selection import (
    bottomk,
    kept_count,
    random_k,
    segment_bounds,
    segmentwise,
    select_tokens,
    topk,
    uniform,
)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
scores_arrays = st.integers(1, 800).flatmap(lambda n: arrays(np.float64, n, elements=finite))
retentions = st.floats(0.001, 1.0)
segment_counts = st.integers(1, 60)


def _sorted_unique_in_range(kept: np.ndarray, n: int) -> bool:
    return bool(np.all(np.diff(kept) > 0) and (len(kept) == 0 or (kept[0] >= 0 and kept[-1] < n)))


@given(scores_arrays, retentions, segment_counts)
def test_segmentwise_quotas_order_and_count(scores, retention, segments):
    n = len(scores)
    kept = segmentwise(scores, retention, segments)
    k = kept_count(n, retention)
    bounds = segment_bounds(n, segments)
    s = len(bounds) - 1
    assert _sorted_unique_in_range(kept, n)
    per_segment = np.searchsorted(kept, bounds[1:]) - np.searchsorted(kept, bounds[:-1])
    if k >= s:
        # The paper: exactly floor(K/S) from every segment.
        assert np.all(per_segment == k // s)
        assert len(kept) == (k // s) * s
    else:
        # K < S: K segments keep one token each.
        assert len(kept) == k and np.all(per_segment <= 1)


@given(scores_arrays, retentions, segment_counts)
def test_segmentwise_keeps_the_best_of_each_segment(scores, retention, segments):
    n = len(scores)
    kept = set(segmentwise(scores, retention, segments).tolist())
    bounds = segment_bounds(n, segments)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        inside = [i for i in range(lo, hi) if i in kept]
        outside = [i for i in range(lo, hi) if i not in kept]
        if inside and outside:
            assert min(scores[i] for i in inside) >= max(scores[i] for i in outside)


@given(scores_arrays, retentions, segment_counts)
def test_fill_remainder_reaches_exactly_k(scores, retention, segments):
    kept = segmentwise(scores, retention, segments, fill_remainder=True)
    assert len(kept) == kept_count(len(scores), retention)
    assert _sorted_unique_in_range(kept, len(scores))


@given(scores_arrays, retentions)
def test_topk_and_bottomk_are_extremes(scores, retention):
    n, k = len(scores), kept_count(len(scores), retention)
    top, bottom = topk(scores, retention), bottomk(scores, retention)
    assert len(top) == len(bottom) == k
    assert _sorted_unique_in_range(top, n) and _sorted_unique_in_range(bottom, n)
    rest_top = np.setdiff1d(np.arange(n), top)
    if len(rest_top):
        assert scores[top].min() >= scores[rest_top].max()
    rest_bottom = np.setdiff1d(np.arange(n), bottom)
    if len(rest_bottom):
        assert scores[bottom].max() <= scores[rest_bottom].min()


@given(st.integers(1, 5000), retentions, st.integers(0, 2**31))
def test_random_is_seeded_and_reproducible(n, retention, seed):
    first, second = random_k(n, retention, seed), random_k(n, retention, seed)
    assert np.array_equal(first, second)
    assert len(first) == kept_count(n, retention) and _sorted_unique_in_range(first, n)


@given(st.integers(1, 5000), retentions)
def test_uniform_is_evenly_spread(n, retention):
    kept = uniform(n, retention)
    k = kept_count(n, retention)
    assert len(kept) == k and _sorted_unique_in_range(kept, n)
    if k > 1:
        gaps = np.diff(kept)
        assert gaps.max() - gaps.min() <= 1


@settings(max_examples=50)
@given(scores_arrays, st.sampled_from(list(Strategy)), retentions, segment_counts)
def test_dispatch_is_deterministic(scores, strategy, retention, segments):
    params = PruningParams(retention=retention, strategy=strategy, segments=segments)
    first, second = select_tokens(scores, params), select_tokens(scores, params)
    assert np.array_equal(first, second)
    if strategy is Strategy.NONE:
        assert np.array_equal(first, np.arange(len(scores)))


def test_edge_cases():
    scores = np.array([0.1, 0.9, 0.5])
    # N < S: segments clamp to N, each token its own segment.
    assert segmentwise(scores, 1.0, 10).tolist() == [0, 1, 2]
    # Tiny r still keeps one token: the best.
    assert segmentwise(scores, 1e-6, 10).tolist() == [1]
    # r = 1 keeps everything for every strategy.
    for strategy in Strategy:
        assert select_tokens(scores, PruningParams(1.0, strategy, 2)).tolist() == [0, 1, 2]
    assert kept_count(10, 0.3) == 3  # no float flooring surprise (0.3 * 10 = 2.9999...)
    assert kept_count(0, 0.5) == 0


def test_paper_example_750_tokens():
    """r = 0.25, S = 10 on 750 tokens: K = 187, 18 per segment -> 180 tokens, as the issue states."""
    rng = np.random.default_rng(0)
    kept = segmentwise(rng.random(750), 0.25, 10)
    assert len(kept) == 180 == (math.floor(0.25 * 750) // 10) * 10
