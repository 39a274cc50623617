"""The shared token loop: stop strings, streaming that never takes text back, EOS, sampling."""

from __future__ import annotations

import torch

from segprune_core.decoding import TokenSampler, decode_loop
from segprune_core.request import SamplingParams, TextDelta
from segprune_core.timing import Clock

VOCAB = list("abcdefgh ") + ["<eos>"]
EOS = len(VOCAB) - 1


class CharTokenizer:
    def decode(self, ids, skip_special_tokens=True):
        return "".join(VOCAB[i] for i in ids if not (skip_special_tokens and i == EOS))


def scripted(tokens: list[int]):
    """prefill/step that make greedy decoding emit `tokens` in order."""
    position = {"i": 0}

    def logits() -> torch.Tensor:
        out = torch.full((len(VOCAB),), -10.0)
        out[tokens[min(position["i"], len(tokens) - 1)]] = 10.0
        position["i"] += 1
        return out

    return logits, lambda _token: logits()


def run(tokens, **sampling):
    prefill, step = scripted([VOCAB.index(t) if t != "<eos>" else EOS for t in tokens])
    params = SamplingParams(**{"temperature": 0.0, "max_tokens": 50, **sampling})
    loop = decode_loop(
        prefill=prefill,
        step=step,
        sampling=params,
        tokenizer=CharTokenizer(),
        eos_ids={EOS},
        max_tokens=params.max_tokens,
        clock=Clock(torch.device("cpu")),
    )
    deltas = []
    while True:
        try:
            deltas.append(next(loop))
        except StopIteration as done:
            return deltas, done.value


def test_stop_string_truncates_and_is_never_streamed():
    deltas, outcome = run(list("abc deh") + ["<eos>"], stop=("de",))
    assert outcome.text == "abc " and outcome.finish_reason == "stop"
    assert all(isinstance(d, TextDelta) for d in deltas)
    assert "".join(d.text for d in deltas) == "abc "  # the held-back "d" never went out


def test_eos_length_and_ignore_eos():
    _, stopped = run(list("ab") + ["<eos>"])
    assert (stopped.text, stopped.finish_reason, len(stopped.token_ids)) == ("ab", "stop", 2)
    _, cut = run(list("abcdefgh"), max_tokens=3)
    assert (cut.text, cut.finish_reason) == ("abc", "length")
    _, forced = run(list("ab") + ["<eos>"], max_tokens=5, ignore_eos=True)
    assert forced.finish_reason == "length" and len(forced.token_ids) == 5


def test_sampling_is_seeded_and_top_p_keeps_the_best():
    logits = torch.tensor([2.0, 1.9, 0.0, -1.0])
    draws = TokenSampler(SamplingParams(temperature=1.0, seed=7))
    again = TokenSampler(SamplingParams(temperature=1.0, seed=7))
    assert [draws(logits) for _ in range(20)] == [again(logits) for _ in range(20)]
    narrow = TokenSampler(SamplingParams(temperature=1.0, top_p=0.01, seed=1))
    assert {narrow(logits) for _ in range(50)} == {0}
