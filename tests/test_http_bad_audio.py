"""Unusual and broken audio over HTTP: usable audio is transcribed, the rest gets a 400 OpenAI error,
nothing gets a 5xx, and the server keeps serving."""

from __future__ import annotations

import base64
import io
import math

import httpx
import numpy as np
import pytest
import soundfile as sf

from server.app import create_app
from server.settings import Settings
from tests.speech import load_wav, synthesize_speech

WHISPER = "demo-whisper-tiny.en"
QWEN = "demo-qwen2-audio"


@pytest.fixture(scope="module")
def base_url(demo_engines, live_server):
    settings = Settings(host="127.0.0.1", max_tokens_limit=32, default_max_tokens=2, max_audio_seconds=10)
    with live_server(create_app(settings, demo_engines)) as url:
        yield url


@pytest.fixture(scope="module")
def speech(speech_dir) -> np.ndarray:
    return load_wav(synthesize_speech("Seven.", speech_dir))  # 16 kHz mono float32


def encode(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    positions = np.arange(math.ceil(len(samples) * rate / 16000)) * 16000 / rate
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


def usable_audio(speech: np.ndarray) -> dict[str, bytes]:
    stereo = np.stack([speech, speech * 0.5], axis=1)
    return {
        "pcm16": encode(speech, 16000, subtype="PCM_16"),
        "pcm8": encode(speech, 16000, subtype="PCM_U8"),
        "pcm24": encode(speech, 16000, subtype="PCM_24"),
        "pcm32": encode(speech, 16000, subtype="PCM_32"),
        "float32": encode(speech, 16000, subtype="FLOAT"),
        "float64": encode(speech, 16000, subtype="DOUBLE"),
        "stereo": encode(stereo, 16000),
        "six_channels": encode(np.repeat(speech[:, None], 6, axis=1), 16000),
        "8khz": encode(resample(speech, 8000), 8000),
        "48khz": encode(resample(speech, 48000), 48000),
        "192khz": encode(resample(speech, 192000), 192000),
        "flac": encode(speech, 16000, fmt="FLAC"),
        "ogg_vorbis": encode(speech, 16000, fmt="OGG", subtype="VORBIS"),
        "silence": encode(np.zeros(16000, dtype=np.float32), 16000),
        "clipped_loud": encode(np.clip(speech * 50, -1, 1), 16000),
    }


def broken_audio(speech: np.ndarray) -> dict[str, bytes]:
    wav = encode(speech, 16000)
    nan = speech.copy()
    nan[100] = np.nan
    return {
        "empty": b"",
        "text": b"this is not audio at all",
        "random_bytes": np.random.default_rng(0).bytes(4096),
        "wav_header_only": wav[:44],
        "truncated_header": wav[:20],
        "nan_samples": encode(nan, 16000, subtype="FLOAT"),
        "inf_samples": encode(np.full(1600, np.inf, dtype=np.float32), 16000, subtype="FLOAT"),
        "too_long": encode(np.zeros(16000 * 11, dtype=np.float32), 16000),
        "png": b"\x89PNG\r\n\x1a\n" + bytes(100),
    }


def transcribe(base_url: str, data: bytes, filename: str = "audio.wav") -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/audio/transcriptions",
        data={"model": WHISPER},
        files={"file": (filename, data)},
        timeout=120,
    )


def test_usable_audio_is_transcribed(base_url, speech, openai_schema):
    for name, data in usable_audio(speech).items():
        response = transcribe(base_url, data)
        assert response.status_code == 200, (name, response.text)
        openai_schema("CreateTranscriptionResponseJson", response.json())


def test_broken_audio_is_a_400(base_url, speech, openai_schema):
    for name, data in broken_audio(speech).items():
        response = transcribe(base_url, data)
        assert response.status_code == 400, (name, response.text)
        body = response.json()
        openai_schema("ErrorResponse", body)
        assert body["error"]["param"] == "file", name
    assert transcribe(base_url, encode(speech, 16000)).status_code == 200  # still serving


def test_tiny_clips_never_fail_the_server(base_url):
    for samples in (1, 2, 10, 160):
        response = transcribe(base_url, encode(np.full(samples, 0.1, dtype=np.float32), 16000))
        assert response.status_code in (200, 400), (samples, response.text)
    for rate in (1000, 384_000):
        response = transcribe(base_url, encode(np.zeros(rate // 10, dtype=np.float32), rate))
        assert response.status_code in (200, 400), (rate, response.text)


def test_declared_format_is_only_a_hint(base_url, speech):
    """input_audio.format says mp3 but the bytes are FLAC: the container is read from the bytes."""
    flac = base64.b64encode(encode(speech, 16000, fmt="FLAC")).decode()
    part = {"type": "input_audio", "input_audio": {"data": flac, "format": "mp3"}}
    body = {"model": QWEN, "messages": [{"role": "user", "content": [part]}], "max_tokens": 1}
    response = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
