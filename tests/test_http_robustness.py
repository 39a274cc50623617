"""Overload, disconnects, timeouts, failures inside the engine, body size and API keys, on a live server
with the real demo engines."""

from __future__ import annotations

import base64
import concurrent.futures
import time

import httpx
import openai
import pytest

from segprune_core.request import GenerationResult
from server.app import create_app
from server.settings import Settings
from tests.processes import server_process
from tests.speech import synthesize_speech

QWEN = "demo-qwen2-audio"
WHISPER = "demo-whisper-tiny.en"
LONG = 3000  # tokens: 30 s or more of decoding for the demo LLM, so overlaps and early stops are unmistakable


def settings(**overrides) -> Settings:
    return Settings(host="127.0.0.1", **{"max_tokens_limit": LONG, **overrides})


def sdk(url: str, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=kwargs.pop("api_key", "unused"), max_retries=0, **kwargs)


@pytest.fixture(scope="module")
def wav(speech_dir) -> bytes:
    return synthesize_speech("Hello there.", speech_dir).read_bytes()


def chat(wav: bytes, max_tokens: int) -> dict:
    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}}
    return dict(
        model=QWEN,
        messages=[{"role": "user", "content": [audio, {"type": "text", "text": "Go on."}]}],
        max_tokens=max_tokens,
        temperature=0,
    )


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


class FlakyEngine:
    """A real engine that fails the next request like a GPU out of memory would, before or mid-stream."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.fail = None  # None | "before" | "during"

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, request, should_stop=None):
        for event in self.stream(request, should_stop):
            if isinstance(event, GenerationResult):
                return event
        raise AssertionError("no result")

    def stream(self, request, should_stop=None):
        failure, self.fail = self.fail, None
        if failure == "before":
            raise RuntimeError("CUDA out of memory (simulated)")
        events = self._engine.stream(request, should_stop)
        if failure != "during":
            return events

        def failing():
            yield next(events)
            raise RuntimeError("CUDA out of memory mid-stream (simulated)")

        return failing()


# --- overload -----------------------------------------------------------------------------------------
def test_full_queue_is_a_429_with_retry_after(demo_engines, live_server, wav, openai_schema):
    app = create_app(settings(queue_size=1), demo_engines)
    worker_of = lambda: app.state.pool.workers[QWEN]  # noqa: E731
    with live_server(app) as url, concurrent.futures.ThreadPoolExecutor(2) as pool:
        client = sdk(url, timeout=120)
        running = client.chat.completions.create(**chat(wav, LONG), stream=True)
        next(iter(running))  # the worker is busy with it
        waiting = pool.submit(client.chat.completions.create, **chat(wav, 2))
        wait_for(lambda: worker_of().waiting == 1)

        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(**chat(wav, 2))
        openai_schema("ErrorResponse", info.value.response.json())
        assert info.value.response.json()["error"]["code"] == "queue_full"
        assert int(info.value.response.headers["Retry-After"]) >= 1

        running.close()  # hanging up frees the worker for the waiting request
        assert waiting.result(timeout=60).choices[0].finish_reason in ("stop", "length")


def test_streaming_client_that_hangs_up_frees_the_worker(demo_engines, live_server, wav):
    app = create_app(settings(), demo_engines)
    with live_server(app) as url:
        client = sdk(url, timeout=120)
        stream = client.chat.completions.create(**chat(wav, LONG), stream=True)
        for _, _chunk in zip(range(5), stream, strict=False):
            pass
        hung_up = time.monotonic()
        stream.close()
        nxt = client.chat.completions.create(**chat(wav, 1))
        # It started at once instead of waiting for the LONG tokens the first request asked for.
        assert nxt.timings["queue"] < 5000 and time.monotonic() - hung_up < 30
        assert app.state.pool.workers[QWEN].waiting == 0


def test_non_streaming_client_that_hangs_up_frees_the_worker(demo_engines, live_server, wav):
    app = create_app(settings(), demo_engines)
    with live_server(app) as url:
        with pytest.raises(openai.APITimeoutError):
            sdk(url, timeout=2).chat.completions.create(**chat(wav, LONG))
        started = time.monotonic()
        nxt = sdk(url, timeout=120).chat.completions.create(**chat(wav, 1))
        assert nxt.timings["queue"] < 5000 and time.monotonic() - started < 30


def test_request_timeout_is_a_504_and_the_worker_moves_on(demo_engines, live_server, wav, openai_schema):
    app = create_app(settings(request_timeout_seconds=1.5), demo_engines)
    with live_server(app) as url:
        client = sdk(url, timeout=120)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(**chat(wav, LONG))
        assert info.value.status_code == 504
        openai_schema("ErrorResponse", info.value.response.json())
        assert client.chat.completions.create(**chat(wav, 1)).choices[0].finish_reason == "length"


# --- failures inside the engine ------------------------------------------------------------------------
def test_an_engine_failure_is_a_500_and_the_worker_keeps_serving(demo_engines, live_server, wav, openai_schema):
    flaky = FlakyEngine(demo_engines[QWEN])
    with live_server(create_app(settings(), {QWEN: flaky})) as url:
        client = sdk(url, timeout=120)
        for stream in (False, True):
            flaky.fail = "before"
            with pytest.raises(openai.InternalServerError) as info:
                client.chat.completions.create(**chat(wav, 2), stream=stream)
            body = info.value.response.json()
            openai_schema("ErrorResponse", body)
            assert "CUDA" not in body["error"]["message"]  # internals stay in the log
            assert client.chat.completions.create(**chat(wav, 2)).choices[0].finish_reason == "length"

        flaky.fail = "during"  # after the 200 went out: the error arrives as a stream event
        with pytest.raises(openai.APIError, match="server had an error"):
            list(client.chat.completions.create(**chat(wav, 5), stream=True))
        assert client.chat.completions.create(**chat(wav, 2)).choices[0].finish_reason == "length"


# --- body size ------------------------------------------------------------------------------------------
def test_oversized_bodies_are_413s(demo_engines, live_server, wav, openai_schema):
    limit = 64 * 1024
    with live_server(create_app(settings(max_request_bytes=limit), demo_engines)) as url:
        big = wav + b"\0" * limit
        with pytest.raises(openai.APIStatusError) as info:
            sdk(url).audio.transcriptions.create(model=WHISPER, file=("big.wav", big))
        assert info.value.status_code == 413
        openai_schema("ErrorResponse", info.value.response.json())

        def chunked():  # no Content-Length: the limit is enforced while reading
            for _ in range(4):
                yield b"x" * (limit // 2)

        response = httpx.post(
            f"{url}/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
        # Within the limit, the same server works.
        assert sdk(url).audio.transcriptions.create(model=WHISPER, file=("ok.wav", wav)).text


# --- API keys ------------------------------------------------------------------------------------------
def test_api_keys(demo_engines, live_server, wav, tmp_path, openai_schema):
    key_file = tmp_path / "keys"
    key_file.write_text("# one per line\nfile-key\n\n")
    app = create_app(settings(api_keys=["env-key"], api_keys_file=key_file), demo_engines)
    with live_server(app) as url:
        for key in ("env-key", "file-key"):
            assert [m.id for m in sdk(url, api_key=key).models.list()]
        for key in ("wrong", "env-ke", "env-key2"):
            with pytest.raises(openai.AuthenticationError) as info:
                sdk(url, api_key=key).models.list()
            openai_schema("ErrorResponse", info.value.response.json())
        with pytest.raises(openai.AuthenticationError):
            sdk(url, api_key="wrong").audio.transcriptions.create(model=WHISPER, file=("a.wav", wav))
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Basic env-key"}).status_code == 401
        assert httpx.get(f"{url}/v1/nothing").status_code == 401  # no route listing without a key
        assert httpx.get(f"{url}/health").status_code == 200  # public unless protected


def test_protected_health(demo_engines, live_server):
    app = create_app(settings(api_keys=["k"], protect_health_and_metrics=True), demo_engines)
    with live_server(app) as url:
        assert httpx.get(f"{url}/health").status_code == 401
        assert httpx.get(f"{url}/ready", headers={"Authorization": "Bearer k"}).status_code == 200


# --- SIGTERM ---------------------------------------------------------------------------------------------
def test_sigterm_drains_in_flight_requests(demo_dir, wav):
    """`segprune serve` (here `python -m server`) finishes a running stream on SIGTERM, then exits 0."""
    import signal

    with server_process(demo_dir, "--model", QWEN) as (url, process):
        stream = sdk(url, timeout=120).chat.completions.create(**chat(wav, 60), stream=True)
        chunks = [next(iter(stream))]
        process.send_signal(signal.SIGTERM)
        chunks += list(stream)  # the in-flight request runs to its end
        assert chunks[-1].choices[0].finish_reason == "length"
        # uvicorn re-raises the signal it handled once shutdown is complete
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
