"""The audio decoder: arbitrary bytes never crash it, real containers decode to 16 kHz mono float32."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segprune_core.audio import decode_audio
from segprune_core.errors import AudioDecodeError, AudioTooLongError, SegpruneError


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


WAV_HEADER = encode(np.zeros(1600, dtype=np.float32), 16000, "WAV", "PCM_16")[:44]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_decode_or_raise_a_client_error(data):
    try:
        clip = decode_audio(data, max_seconds=60)
    except SegpruneError:
        return
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1 and np.all(np.isfinite(clip.samples))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_bytes_behind_a_valid_wav_header_never_crash(tail):
    # A real header followed by garbage exercises the parser far deeper than random bytes do.
    try:
        decode_audio(WAV_HEADER + tail, max_seconds=60)
    except SegpruneError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=20_000), st.integers(0, 20_000))
def test_truncated_real_files_never_crash(noise, cut):
    samples = np.frombuffer(noise.ljust(2 * ((len(noise) + 1) // 2), b"\0"), dtype=np.int16) / 32768.0
    for fmt in ("WAV", "FLAC", "OGG"):
        data = encode(samples.astype(np.float32), 16000, fmt)
        try:
            decode_audio(data[:cut], max_seconds=60)
        except SegpruneError:
            pass


FORMATS = [("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "FLOAT")]
FORMATS += [("FLAC", None), ("OGG", None)]
CASES = [(f, s, rate, ch) for f, s in FORMATS for rate in (8000, 16000, 44100, 96000) for ch in (1, 2, 6)]
# MP3 itself allows at most 2 channels and 48 kHz.
CASES += [("MP3", None, rate, ch) for rate in (8000, 16000, 44100) for ch in (1, 2)]


@pytest.mark.parametrize(("fmt", "subtype", "rate", "channels"), CASES)
def test_containers_depths_rates_and_channels(fmt, subtype, rate, channels):
    t = np.arange(int(0.5 * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    samples = np.stack([tone] * channels, axis=1).astype(np.float32)
    clip = decode_audio(encode(samples, rate, fmt, subtype))
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert abs(clip.duration - 0.5) < 0.06  # mp3 adds encoder delay padding
    assert 0.2 < np.abs(clip.samples).max() <= 1.0


def test_limits_and_bad_input():
    with pytest.raises(AudioDecodeError, match="empty"):
        decode_audio(b"")
    with pytest.raises(AudioDecodeError):
        decode_audio(b"this is not audio at all" * 10)
    with pytest.raises(AudioTooLongError, match="61.0 s"):
        decode_audio(encode(np.zeros(61 * 16000, dtype=np.float32), 16000, "WAV"), max_seconds=60)
    nan = np.full(1600, np.nan, dtype=np.float32)
    with pytest.raises(AudioDecodeError, match="NaN"):
        decode_audio(encode(nan, 16000, "WAV", "FLOAT"))
    with pytest.raises(AudioDecodeError, match="sample rate"):
        decode_audio(encode(np.zeros(100, dtype=np.float32), 500, "WAV"))
    one_sample = decode_audio(encode(np.array([0.5], dtype=np.float32), 16000, "WAV", "FLOAT"))
    assert len(one_sample.samples) == 1
    silence = decode_audio(encode(np.zeros(16000, dtype=np.float32), 16000, "WAV"))
    assert not silence.samples.any()
