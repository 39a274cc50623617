"""The engine on the demo models: r = 1.0 equals stock transformers, pruning really shortens the prompt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segprune_core.engine import Engine
from segprune_core.request import (
    AudioClip,
    GenerationRequest,
    GenerationResult,
    Message,
    PruningParams,
    SamplingParams,
    Strategy,
    Task,
    TextDelta,
    TextPart,
    Timings,
)
from tests.speech import load_wav, synthesize_speech

ALMS = ["demo-qwen2-audio", "demo-audioflamingo3"]
GREEDY = SamplingParams(max_tokens=6, temperature=0.0)


@pytest.fixture(scope="module")
def engines(demo_dir):
    return {name: Engine.load(name) for name in [*ALMS, "demo-whisper-tiny.en"]}


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> AudioClip:
    path = synthesize_speech(
        "The quick brown fox jumps over the lazy dog near the quiet river bank.",
        tmp_path_factory.mktemp("speech") / "fox.wav",
    )
    return AudioClip(load_wav(path))


def tone(seconds: float, seed: int = 0) -> AudioClip:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return AudioClip((0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32))


def chat(clips, retention=1.0, strategy=Strategy.SEGMENTWISE, text="What do you hear?", sampling=GREEDY):
    content = (*clips, TextPart(text))
    return GenerationRequest(
        (Message("user", content),),
        sampling=sampling,
        pruning=PruningParams(retention=retention, strategy=strategy, segments=10),
    )


@pytest.mark.parametrize("name", ALMS)
@pytest.mark.parametrize("strategy", [Strategy.SEGMENTWISE, Strategy.NONE])
def test_full_retention_equals_stock_forward(engines, speech, name, strategy):
    engine = engines[name]
    adapter = engine.adapter
    request = chat([speech], retention=1.0, strategy=strategy)
    timings = Timings()
    pruned = [adapter.prune(c, request.pruning, timings) for c in adapter.encode(request.audio_clips, timings)]
    prompt = adapter.prepare_prompt(request, pruned)

    text = adapter.processor.apply_chat_template(
        adapter.conversation(request), add_generation_prompt=True, tokenize=False
    )
    stock_inputs = adapter.processor(text=text, audio=[speech.samples], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        stock_logits = adapter.model(**stock_inputs).logits
        hidden = adapter.model.model.language_model(inputs_embeds=prompt.inputs_embeds).last_hidden_state
        our_logits = adapter.model.lm_head(hidden)
    assert torch.equal(prompt.input_ids.cpu(), stock_inputs["input_ids"])
    torch.testing.assert_close(our_logits, stock_logits, atol=1e-5, rtol=1e-5)


def test_quarter_retention_on_30s_keeps_180_of_750_tokens(engines):
    result = engines["demo-qwen2-audio"].generate(chat([tone(30.0)], retention=0.25))
    assert result.pruning.audio_tokens_before == 750
    assert result.pruning.audio_tokens_kept == 180 == result.audio_tokens
    assert result.pruning.segments == 10 and result.pruning.windows == 1
    full = engines["demo-qwen2-audio"].generate(chat([tone(30.0)], retention=1.0))
    # The prompt shrinks by exactly the dropped audio tokens: prefill really sees fewer tokens.
    assert full.prompt_tokens - result.prompt_tokens == 750 - 180


def test_clips_batched_together_equal_each_alone(engines):
    adapter = engines["demo-qwen2-audio"].adapter
    clips = [tone(4.0, 1), tone(27.5, 2), tone(11.0, 3)]
    params = PruningParams(retention=0.3)
    together = adapter.encode(clips, Timings())
    for clip, batched in zip(clips, together, strict=True):
        (alone,) = adapter.encode([clip], Timings())
        torch.testing.assert_close(batched.scores, alone.scores, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batched.valid_hidden(), alone.valid_hidden(), atol=1e-5, rtol=1e-4)
        kept_together = adapter.prune(batched, params, Timings()).kept.indices
        kept_alone = adapter.prune(alone, params, Timings()).kept.indices
        assert np.array_equal(kept_together, kept_alone)
    # And the generated text of a multi-clip request is the same whatever the encoder batch size.
    engine = engines["demo-qwen2-audio"]
    first = engine.generate(chat(clips, retention=0.5)).text
    adapter.encoder_batch_size = 1
    try:
        assert engine.generate(chat(clips, retention=0.5)).text == first
    finally:
        adapter.encoder_batch_size = 8


@pytest.mark.parametrize("name", ALMS)
def test_stream_matches_generate_and_reports_timings(engines, speech, name):
    engine = engines[name]
    request = chat([speech], retention=0.5, sampling=SamplingParams(max_tokens=8, temperature=0.7, seed=3))
    events = list(engine.stream(request))
    assert isinstance(events[-1], GenerationResult)
    deltas = [e.text for e in events[:-1]]
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    result = events[-1]
    assert "".join(deltas) == result.text
    assert engine.generate(request).text == result.text  # seeded sampling is reproducible
    t = result.timings
    assert t.encoder > 0 and t.scoring > 0 and t.prefill > 0 and t.ttft >= t.prefill
    assert result.completion_tokens <= 8
    assert result.finish_reason in ("stop", "length")


def test_whisper_transcribes_real_speech(engines, speech):
    engine = engines["demo-whisper-tiny.en"]
    request = GenerationRequest(
        (Message("user", (speech,)),),
        sampling=SamplingParams(max_tokens=64, temperature=0.0),
        pruning=PruningParams(retention=1.0),
        task=Task.TRANSCRIBE,
    )
    result = engine.generate(request)
    words = result.text.lower()
    assert sum(w in words for w in ("quick", "lazy", "dog", "quiet", "river")) >= 4, result.text
    # At r = 1.0 the engine's own decode loop equals transformers' greedy timestamp-mode generate.
    adapter = engine.adapter
    features = adapter.processor.feature_extractor(speech.samples, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ids = adapter.model.generate(features.input_features, max_new_tokens=64, return_timestamps=True)
    stock = adapter.tokenizer.decode(ids[0], skip_special_tokens=True).strip()
    assert result.text == stock
    assert 0 <= result.segments[0].start < result.segments[-1].end <= speech.duration
    with pytest.raises(Exception, match="cannot do chat"):
        engine.generate(chat([speech]))


def test_strategies_change_what_is_kept(engines, speech):
    engine = engines["demo-qwen2-audio"]
    kept = {}
    for strategy in (Strategy.SEGMENTWISE, Strategy.TOPK, Strategy.BOTTOMK, Strategy.UNIFORM):
        adapter = engine.adapter
        (encoded,) = adapter.encode([speech], Timings())
        kept[strategy] = adapter.prune(encoded, PruningParams(0.25, strategy), Timings()).kept.indices
    assert not np.array_equal(kept[Strategy.TOPK], kept[Strategy.BOTTOMK])
    assert not np.array_equal(kept[Strategy.SEGMENTWISE], kept[Strategy.UNIFORM])
