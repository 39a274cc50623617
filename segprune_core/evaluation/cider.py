"""CIDEr-D (Vedantam et al. 2015), as the coco-caption / aac-metrics reference computes it.

A line-by-line port of the reference algorithm (aac-metrics `cider_d`, itself from coco-caption):
tf-idf vectors of 1- to 4-grams with document frequencies taken over the references of the scored
corpus, clipped cosine similarity, a Gaussian length penalty (sigma 6), mean over references and
n-gram orders, times 10. Like the reference, "length" counts bigrams, not words (a known quirk kept
so scores match published numbers).

aac-metrics itself is not used: it pins transformers < 5 (through msclap), which segprune cannot run
with. Sentences are tokenized like coco-caption's PTB tokenizer: lowercase, contractions split
("dog's" -> "dog 's"), punctuation dropped; a pure-Python approximation of the Java tokenizer.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

NGRAM_ORDER = 4
SIGMA = 6.0
SCALE = 10.0

_CONTRACTION = re.compile(r"(\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
_TOKEN = re.compile(r"n't|'[a-z]+|[a-z0-9]+(?:-[a-z0-9]+)*")

NGram = tuple[str, ...]


def tokenize(sentence: str) -> list[str]:
    text = _CONTRACTION.sub(r"\1 \2", sentence.lower().replace("’", "'"))
    return _TOKEN.findall(text)


def _ngram_counts(words: list[str], n: int = NGRAM_ORDER) -> Counter[NGram]:
    counts: Counter[NGram] = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i : i + k])] += 1
    return counts


def _tfidf(
    counts: Counter[NGram], doc_frequency: Counter[NGram], log_corpus: float, n: int
) -> tuple[list[dict[NGram, float]], list[float], int]:
    """Per-order tf-idf vectors, their norms, and the reference's "length" (its bigram count)."""
    vectors: list[dict[NGram, float]] = [defaultdict(float) for _ in range(n)]
    norms = [0.0] * n
    length = 0
    for ngram, term_frequency in counts.items():
        order = len(ngram) - 1
        # An n-gram absent from every reference counts as appearing once.
        weight = float(term_frequency) * (log_corpus - math.log(max(1.0, doc_frequency[ngram])))
        vectors[order][ngram] = weight
        norms[order] += weight**2
        if order == 1:
            length += term_frequency
    return vectors, [math.sqrt(v) for v in norms], length


def _similarity(
    candidate: tuple[list[dict[NGram, float]], list[float], int],
    reference: tuple[list[dict[NGram, float]], list[float], int],
    n: int,
    sigma: float,
) -> list[float]:
    (cand_vec, cand_norm, cand_len), (ref_vec, ref_norm, ref_len) = candidate, reference
    penalty = math.exp(-((cand_len - ref_len) ** 2) / (2 * sigma**2))
    similarities = []
    for order in range(n):
        value = sum(min(w, ref_vec[order].get(g, 0.0)) * ref_vec[order].get(g, 0.0) for g, w in cand_vec[order].items())
        if cand_norm[order] != 0 and ref_norm[order] != 0:
            value /= cand_norm[order] * ref_norm[order]
        similarities.append(value * penalty)
    return similarities


def cider_d_scores(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    n: int = NGRAM_ORDER,
    sigma: float = SIGMA,
    scale: float = SCALE,
) -> list[float]:
    """CIDEr-D of each candidate against its references; the corpus score is their mean.

    Document frequencies come from all references given, so scores depend on the whole corpus
    (at least 2 items, as in the reference implementation).
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
    if len(candidates) < 2:
        raise ValueError("CIDEr-D needs at least 2 items (document frequencies come from the corpus)")
    cand_counts = [_ngram_counts(tokenize(c), n) for c in candidates]
    ref_counts = [[_ngram_counts(tokenize(r), n) for r in refs] for refs in references]
    doc_frequency: Counter[NGram] = Counter()
    for refs in ref_counts:
        doc_frequency.update({g for ref in refs for g in ref})
    log_corpus = math.log(float(len(references)))
    scores = []
    for cand, refs in zip(cand_counts, ref_counts, strict=True):
        cand_tfidf = _tfidf(cand, doc_frequency, log_corpus, n)
        per_order = [0.0] * n
        for ref in refs:
            for order, value in enumerate(_similarity(cand_tfidf, _tfidf(ref, doc_frequency, log_corpus, n), n, sigma)):
                per_order[order] += value
        scores.append(sum(per_order) / n / len(refs) * scale)
    return scores


def cider_d(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus CIDEr-D: the mean of the per-item scores."""
    scores = cider_d_scores(candidates, references)
    return sum(scores) / len(scores)
