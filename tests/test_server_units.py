"""Server pieces without models: settings, CLI flags, subtitles, error naming, audio inputs, the worker."""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.server
import io
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile as sf

from segprune_core.request import (
    GenerationRequest,
    GenerationResult,
    Message,
    PruningReport,
    SamplingParams,
    Strategy,
    TextDelta,
    TextPart,
    Timings,
    TranscriptSegment,
)
from server import remote_audio
from server.audio_input import decode_data_uri
from server.cli import add_serve_arguments, settings_from_args
from server.errors import APIError, validation_param
from server.settings import Settings
from server.subtitles import to_srt, to_vtt
from server.worker import ModelWorker, QueueFullError


# --- settings and flags ---------------------------------------------------------------------------------
def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("SEGPRUNE_MODELS", "demo-whisper-tiny.en, /models/qwen")
    monkeypatch.setenv("SEGPRUNE_SERVED_MODEL_NAMES", '["whisper", "qwen"]')
    monkeypatch.setenv("SEGPRUNE_DEFAULT_RETENTION", "0.5")
    monkeypatch.setenv("SEGPRUNE_DEFAULT_STRATEGY", "uniform")
    monkeypatch.setenv("SEGPRUNE_API_KEYS", "a,b")
    settings = Settings()
    assert settings.models == ["demo-whisper-tiny.en", "/models/qwen"]
    assert settings.served_name(1) == "qwen" and settings.all_api_keys() == ["a", "b"]
    assert settings.default_retention == 0.5 and settings.default_strategy is Strategy.UNIFORM


def test_settings_defaults():
    settings = Settings()
    assert settings.models == ["demo-qwen2-audio", "demo-whisper-tiny.en"]
    pruning = (settings.default_retention, settings.default_strategy, settings.default_segments)
    assert pruning == (0.25, "segmentwise", 10)
    assert settings.transcription_retention == 1.0 and settings.max_request_bytes == 25 * 1024 * 1024
    assert settings.host == "0.0.0.0" and settings.port == 8000 and not settings.allow_remote_audio_urls


@pytest.mark.parametrize(
    "bad",
    [
        {"default_retention": 0},
        {"default_retention": 1.5},
        {"default_segments": 0},
        {"default_strategy": "best"},
        {"models": []},
        {"models": ["a", "b"], "served_model_names": ["x"]},
        {"default_max_tokens": 10, "max_tokens_limit": 5},
    ],
)
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        Settings(**bad)


def test_flags_override_environment(monkeypatch):
    monkeypatch.setenv("SEGPRUNE_PORT", "9000")
    monkeypatch.setenv("SEGPRUNE_DEFAULT_RETENTION", "0.5")
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(
        ["--model", "m1", "--model", "m2", "--served-model-name", "a", "--served-model-name", "b",
         "--default-retention", "0.1", "--allow-remote-audio-urls", "--api-key", "k", "--queue-size", "3"]
    )  # fmt: skip
    settings = settings_from_args(args)
    assert settings.models == ["m1", "m2"] and settings.served_model_names == ["a", "b"]
    assert settings.default_retention == 0.1 and settings.port == 9000  # flag wins; env fills the rest
    assert settings.allow_remote_audio_urls and settings.api_keys == ["k"] and settings.queue_size == 3


def test_every_setting_has_a_flag():
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    assert {action.dest for action in parser._actions} >= set(Settings.model_fields)


# --- output formats -------------------------------------------------------------------------------------
SEGMENTS = [TranscriptSegment(0.0, 30.0, " Hello world. "), TranscriptSegment(30.0, 3725.5049, "Second\n\nline --> x")]


def test_srt():
    assert to_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:30,000\nHello world.\n\n2\n00:00:30,000 --> 01:02:05,505\nSecond\nline -> x\n"
    )


def test_vtt():
    assert to_vtt(SEGMENTS) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:30.000\nHello world.\n\n00:00:30.000 --> 01:02:05.505\nSecond\nline -> x\n"
    )
    assert to_vtt([]) == "WEBVTT\n\n" and to_srt([TranscriptSegment(0, 1, "  ")]) == ""


def test_validation_param_names_fields_the_openai_way():
    assert validation_param(("body", "messages", 0, "content", 1, "input_audio", "data")) == (
        "messages[0].content[1].input_audio.data"
    )
    assert validation_param(("body", "pruning", "retention")) == "pruning.retention"
    assert validation_param(("body",)) is None


# --- audio inputs ---------------------------------------------------------------------------------------
def test_data_uris():
    payload = b"RIFF....WAVE"
    assert decode_data_uri("data:audio/wav;base64," + base64.b64encode(payload).decode(), param="p") == payload
    assert decode_data_uri("data:;base64," + base64.b64encode(payload).decode(), param="p") == payload
    assert decode_data_uri("data:audio/wav,RIFF%00", param="p") == b"RIFF\0"
    for bad in ("data:audio/wav;base64", "data:audio/wav;base64,@@@", "nodata"):
        with pytest.raises(APIError) as info:
            decode_data_uri(bad, param="p")
        assert info.value.status_code == 400 and info.value.param == "p"


def test_host_allow_list():
    allowed = ["audio.example.com", "*.cdn.example.org"]
    assert remote_audio.host_allowed("AUDIO.example.com.", allowed)
    assert remote_audio.host_allowed("eu.cdn.example.org", allowed)
    assert not remote_audio.host_allowed("cdn.example.org.evil.com", allowed)
    assert not remote_audio.host_allowed("example.com", allowed)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fd00::1",
                                     "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1"])  # fmt: skip
def test_private_addresses_are_not_public(address):
    assert not remote_audio.is_public(address)


def test_public_addresses(address="93.184.216.34"):
    assert remote_audio.is_public(address) and remote_audio.is_public("2606:2800:220:1::1")


def wav_bytes(seconds: float = 0.5) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(16000 * seconds), dtype=np.float32), 16000, format="WAV")
    return buffer.getvalue()


@pytest.fixture
def audio_host() -> Iterator[str]:
    """A local HTTP server: /a.wav (audio), /big (too large), /redirect-out (to a host not allowed)."""
    body = wav_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path == "/redirect-out":
                self.send_response(302)
                self.send_header("Location", "http://elsewhere.example/a.wav")
                self.end_headers()
                return
            data = body if self.path == "/a.wav" else b"\0" * 200_000
            self.send_response(200 if self.path in ("/a.wav", "/big") else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def fetch(url: str, settings: Settings) -> bytes:
    return asyncio.run(remote_audio.fetch_remote_audio(url, settings, param="audio_url"))


def test_remote_audio_refusals(audio_host):
    url = f"http://{audio_host}/a.wav"
    with pytest.raises(APIError, match="disabled"):
        fetch(url, Settings())
    with pytest.raises(APIError, match="not allowed"):
        fetch(url, Settings(allow_remote_audio_urls=True, allowed_audio_url_hosts=["audio.example.com"]))
    # Allow-listed but loopback: refused all the same (no server-side request forgery).
    with pytest.raises(APIError, match="private"):
        fetch(url, Settings(allow_remote_audio_urls=True, allowed_audio_url_hosts=["127.0.0.1"]))


def test_remote_audio_fetch_caps_and_redirects(audio_host, monkeypatch):
    monkeypatch.setattr(remote_audio, "is_public", lambda address: True)  # pretend loopback is the internet
    settings = Settings(allow_remote_audio_urls=True, allowed_audio_url_hosts=["127.0.0.1"], max_request_bytes=100_000)
    assert fetch(f"http://{audio_host}/a.wav", settings) == wav_bytes()
    with pytest.raises(APIError) as info:
        fetch(f"http://{audio_host}/big", settings)
    assert info.value.status_code == 413
    with pytest.raises(APIError, match="not allowed"):  # each redirect hop is checked again
        fetch(f"http://{audio_host}/redirect-out", settings)
    with pytest.raises(APIError, match="HTTP 404"):
        fetch(f"http://{audio_host}/missing", settings)


# --- the worker -----------------------------------------------------------------------------------------
class SlowEngine:
    """Emits max_tokens TextDeltas, one every `step` seconds, checking should_stop in between like the
    real engine."""

    name = "slow"
    family = "fake"

    def __init__(self, step: float = 0.01) -> None:
        self.step = step
        self.started: list[float] = []
        self.stopped_early = 0

    def stream(self, request, should_stop=None):
        self.started.append(time.perf_counter())
        count = 0
        for count in range(1, request.sampling.max_tokens + 1):  # noqa: B007
            if should_stop is not None and should_stop():
                self.stopped_early += 1
                break
            time.sleep(self.step)
            yield TextDelta("x")
        report = PruningReport("none", 1.0, 1, 0, 0, 0)
        yield GenerationResult("x" * count, "stop", 1, count, 0, report, Timings())

    def generate(self, request, should_stop=None):
        *_, result = self.stream(request, should_stop)
        return result


def request(tokens: int, seed: int | None = None) -> GenerationRequest:
    return GenerationRequest(
        messages=(Message("user", (TextPart("hi"),)),), sampling=SamplingParams(max_tokens=tokens, seed=seed)
    )


def test_worker_queue_is_bounded_and_measures_the_wait():
    async def scenario():
        worker = ModelWorker(SlowEngine(step=0.01), queue_size=2)
        jobs = [worker.submit(request(20), streaming=False) for _ in range(3)]  # one running + two waiting
        with pytest.raises(QueueFullError) as info:
            worker.submit(request(20), streaming=False)
        assert info.value.retry_after >= 1
        results = [await job.result() for job in jobs]
        assert results[2].timings.queue > results[0].timings.queue
        assert results[2].timings.queue >= 2 * 20 * 10 * 0.9  # waited for two requests of 20 x 10 ms
        worker.submit(request(1), streaming=False)  # room again
        worker.stop(timeout=5)

    asyncio.run(scenario())


def test_cancelling_frees_the_worker_at_the_next_token():
    async def scenario():
        engine = SlowEngine(step=0.005)
        worker = ModelWorker(engine, queue_size=4)
        long_job = worker.submit(request(100_000), streaming=True)
        assert isinstance(await long_job.next_event(), TextDelta)
        queued = worker.submit(request(3), streaming=False)
        skipped = worker.submit(request(100_000), streaming=False)
        skipped.cancel()  # a client that left while waiting costs nothing
        long_job.cancel()
        result = await asyncio.wait_for(queued.result(), timeout=5)
        assert result.finish_reason == "stop" and engine.stopped_early == 1
        assert len(engine.started) == 2  # the cancelled waiting job never ran
        worker.stop(timeout=5)

    asyncio.run(scenario())


def test_an_exception_fails_only_its_request():
    class Exploding(SlowEngine):
        def stream(self, request, should_stop=None):
            if request.sampling.seed == 13:
                raise RuntimeError("boom")
            return super().stream(request, should_stop)

    async def scenario():
        worker = ModelWorker(Exploding(), queue_size=2)
        bad = worker.submit(request(2, seed=13), streaming=True)
        good = worker.submit(request(2), streaming=True)
        with pytest.raises(RuntimeError, match="boom"):
            await bad.result()
        assert (await good.result()).text == "xx"
        worker.stop(timeout=5)

    asyncio.run(scenario())


def test_stop_drains_the_queue():
    async def scenario():
        worker = ModelWorker(SlowEngine(step=0.01), queue_size=3)
        jobs = [worker.submit(request(5), streaming=False) for _ in range(3)]
        await asyncio.to_thread(worker.stop, 10)
        assert [len((await job.result()).text) for job in jobs] == [5, 5, 5]

    asyncio.run(scenario())
