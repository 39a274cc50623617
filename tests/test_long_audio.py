"""Long audio: 30 s windows encoded in micro-batches, pruned over the whole recording."""

from __future__ import annotations

import numpy as np
import pytest

from segprune_core.engine import Engine
from segprune_core.errors import AudioTooLongError, InvalidRequestError
from segprune_core.request import (
    AudioClip,
    GenerationRequest,
    Message,
    PruningParams,
    SamplingParams,
    Task,
    TextPart,
    Timings,
)
from segprune_core.selection import segmentwise
from tests.speech import load_wav, synthesize_speech

PARAGRAPH = (
    "Sound travels through the air as a wave of pressure. When it reaches the ear, the drum vibrates, "
    "and tiny bones pass the motion on to the inner ear. There, thousands of hair cells turn the motion "
    "into signals for the brain. Low sounds move the far end of the cochlea, high sounds the near end. "
    "This is why a single ear can tell a violin from a drum, and a whisper from a shout. "
)


def noise(seconds: float, seed: int = 0) -> AudioClip:
    rng = np.random.default_rng(seed)
    return AudioClip((0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32))


def chat(clip: AudioClip, retention: float, max_tokens: int = 2) -> GenerationRequest:
    return GenerationRequest(
        (Message("user", (clip, TextPart("Summarise the recording."))),),
        sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0),
        pruning=PruningParams(retention=retention, segments=10),
    )


@pytest.fixture(scope="module")
def qwen(demo_dir):
    return Engine.load("demo-qwen2-audio", encoder_batch_size=2, max_audio_seconds=600)


def test_95_seconds_is_four_windows_pruned_globally(qwen):
    clip = noise(95.0)
    result = qwen.generate(chat(clip, 0.25))
    report = result.pruning
    # 3 full windows of 750 tokens, then 5 s = 500 mel frames -> 250 frames -> 125 tokens.
    assert report.windows == 4
    assert report.tokens_per_window == [750, 750, 750, 125]
    assert report.audio_tokens_before == 2375  # 2375 tokens x 40 ms = 95 s: nothing from beyond the audio
    # S = 10 per window -> 40 segments; K = floor(0.25 * 2375) = 593; 14 per segment -> 560 kept.
    assert report.segments == 40
    assert report.audio_tokens_kept == 560 == sum(report.kept_per_window)

    (encoded,) = qwen.adapter.encode([clip], Timings())
    expected = segmentwise(encoded.scores.numpy(), 0.25, 40)
    kept = qwen.adapter.prune(encoded, PruningParams(0.25, segments=10), Timings()).kept
    assert np.array_equal(kept.indices, expected)
    assert kept.indices.max() < 2375
    bounds = np.cumsum([0, 750, 750, 750, 125])
    assert kept.kept_per_window == [int(((expected >= a) & (expected < b)).sum()) for a, b in zip(bounds, bounds[1:])]
    # Every window keeps tokens: segments scale with duration.
    assert all(n > 0 for n in report.kept_per_window)


def test_micro_batch_size_does_not_change_the_tokens(qwen):
    clip = noise(70.0, seed=4)
    (batched,) = qwen.adapter.encode([clip], Timings())
    qwen.adapter.encoder_batch_size = 1
    try:
        (single,) = qwen.adapter.encode([clip], Timings())
    finally:
        qwen.adapter.encoder_batch_size = 2
    np.testing.assert_allclose(batched.scores.numpy(), single.scores.numpy(), atol=1e-5, rtol=1e-4)


def test_audio_longer_than_the_limit_is_refused_not_truncated(demo_dir):
    engine = Engine.load("demo-qwen2-audio", max_audio_seconds=60)
    with pytest.raises(AudioTooLongError, match="60 s"):
        engine.generate(chat(noise(61.0), 0.25))


def test_audioflamingo3_prunes_across_its_windows(demo_dir):
    engine = Engine.load("demo-audioflamingo3")
    assert engine.max_audio_seconds == 600  # AF3's own limit
    report = engine.generate(chat(noise(65.0), 0.5)).pruning
    assert report.windows == 3 and report.tokens_per_window == [750, 750, 125]
    assert report.audio_tokens_kept == (1625 // 2 // 30) * 30


def test_whisper_two_minutes_has_monotonic_timestamps_covering_the_audio(demo_dir, speech_dir):
    samples = load_wav(synthesize_speech(PARAGRAPH * 6, speech_dir))
    clip = AudioClip(samples)
    assert 110 < clip.duration < 180, clip.duration
    engine = Engine.load("demo-whisper-tiny.en")
    result = engine.generate(
        GenerationRequest(
            (Message("user", (clip,)),),
            sampling=SamplingParams(max_tokens=200, temperature=0.0),
            pruning=PruningParams(retention=1.0),
            task=Task.TRANSCRIBE,
        )
    )
    segments = result.segments
    windows = result.pruning.windows
    assert windows == int(np.ceil(clip.duration / 30))
    for previous, current in zip(segments, segments[1:]):
        assert previous.start < previous.end <= current.start < current.end
    assert 0.0 <= segments[0].start < 3.0 and segments[-1].end <= clip.duration + 1e-6
    assert clip.duration - segments[-1].end < 5.0
    # Every 30 s window holds segments, and the segments cover most of the (continuous) speech.
    assert {int(seg.start // 30) for seg in segments} == set(range(windows))
    assert sum(seg.end - seg.start for seg in segments) > 0.8 * clip.duration
    text = result.text.lower()
    assert text.count("sound travels") >= 4, text  # said 6 times; every window was transcribed


def test_prompt_beyond_the_context_is_a_clear_error(qwen):
    # The demo LLM has 8192 positions: 300 s at r = 1.0 is 7500 audio tokens, plus 1000 to generate.
    with pytest.raises(InvalidRequestError, match="maximum context length is 8192") as error:
        qwen.generate(chat(noise(300.0), 1.0, max_tokens=1000))
    assert error.value.code == "context_length_exceeded"
