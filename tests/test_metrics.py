"""GET /metrics on a live uvicorn with the demo models: what each request adds, and that the per-stage
histograms agree with the `timings` the same requests returned."""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.metrics import LATENCY_BUCKETS, retention_label, strategy_label
from server.settings import Settings
from tests.speech import synthesize_speech

QWEN = "demo-qwen2-audio"
WHISPER = "demo-whisper-tiny.en"
CHAT = "/v1/chat/completions"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
# API timings are rounded to 0.001 ms, so a sum over n requests may differ by n * 0.5e-6 s.
TOLERANCE_PER_REQUEST = 1e-6
STAGES = ("audio_decode", "features", "encoder", "scoring", "queue", "decode")


def settings(**overrides) -> Settings:
    return Settings(**{"host": "127.0.0.1", "max_tokens_limit": 64, "default_max_tokens": 8, **overrides})


@pytest.fixture(scope="module")
def wav(speech_dir) -> bytes:
    return synthesize_speech("Prometheus scrapes the segprune server every second.", speech_dir).read_bytes()


def chat_body(wav: bytes, retention: float, *, stream: bool = False, max_tokens: int = 6) -> dict:
    audio = base64.b64encode(wav).decode()
    return {
        "model": QWEN,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
        "pruning": {"retention": retention},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
                    {"type": "text", "text": "Describe the audio."},
                ],
            }
        ],
    }


def streamed_final_chunk(http: httpx.Client, body: dict) -> dict:
    """The chunk carrying timings/pruning of a streamed chat completion, with its usage merged in."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    final: dict = {}
    with http.stream("POST", CHAT, json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[len("data: ") :])
                if "timings" in chunk:
                    final = chunk
                if chunk.get("usage"):
                    final["usage"] = chunk["usage"]
    assert "timings" in final and "usage" in final
    return final


class Scrape:
    """One /metrics text, queried by metric sample name and a subset of labels (values summed)."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(v for n, lab, v in self.samples if n == name and all(lab.get(k) == x for k, x in labels.items()))

    def label_values(self, name: str, label: str) -> set[str]:
        return {lab[label] for n, lab, _ in self.samples if n == name and label in lab}


def scrape(http: httpx.Client) -> Scrape:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return Scrape(response.text)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


# --- units --------------------------------------------------------------------------------------------
def test_buckets_resolve_one_millisecond_to_ten_minutes():
    assert LATENCY_BUCKETS[0] == 0.001 and LATENCY_BUCKETS[-1] == 600
    assert all(a < b for a, b in zip(LATENCY_BUCKETS, LATENCY_BUCKETS[1:]))
    assert max(b / a for a, b in zip(LATENCY_BUCKETS, LATENCY_BUCKETS[1:])) <= 1.7  # 5 per decade


def test_labels_are_bounded():
    assert retention_label(0.25) == "0.25" and retention_label(1.0) == "1.00"
    assert retention_label(0.123456) == "0.12" and retention_label(0.999) == "1.00"
    assert strategy_label("segmentwise") == "segmentwise"
    with pytest.raises(ValueError):
        strategy_label("made-up")


def test_each_app_has_its_own_registry():
    first, second = create_app(settings()), create_app(settings(default_retention=0.5))
    assert first.state.metrics.registry is not second.state.metrics.registry
    info = Scrape(second.state.metrics.render().decode())
    (labels,) = [lab for name, lab, _ in info.samples if name == "segprune_info"]
    assert labels["default_retention"] == "0.50" and labels["default_strategy"] == "segmentwise"
    assert labels["models"] == "demo-qwen2-audio,demo-whisper-tiny.en" and labels["version"]


# --- live server ----------------------------------------------------------------------------------------
def test_histograms_agree_with_returned_timings(demo_engines, live_server, wav):
    """Chat (plain and streamed, two retentions) and transcription: sums and counts of every stage
    histogram equal the sums of the timings the responses carried, in seconds."""
    with live_server(create_app(settings(), demo_engines)) as url, httpx.Client(base_url=url, timeout=120) as http:
        before = scrape(http)
        assert before.value("segprune_requests_running", model=QWEN) == 0
        assert before.value("segprune_requests_waiting", model=WHISPER) == 0
        bodies = [http.post(CHAT, json=chat_body(wav, r)).json() for r in (1.0, 0.25, 0.25)]
        bodies.append(streamed_final_chunk(http, chat_body(wav, 1.0)))
        response = http.post(TRANSCRIPTIONS, files={"file": ("a.wav", wav)}, data={"model": WHISPER})
        assert response.status_code == 200
        transcription = response.json()
        after = scrape(http)

    for name in ("segprune_prefill_seconds", "segprune_time_to_first_token_seconds"):
        by_retention = after.label_values(f"{name}_count", "retention")
        assert by_retention == {"1.00", "0.25"}
        assert after.label_values(f"{name}_count", "strategy") == {"segmentwise"}
    chat_counts = {r: after.value("segprune_prefill_seconds_count", model=QWEN, retention=r) for r in ("1.00", "0.25")}
    assert chat_counts == {"1.00": 2, "0.25": 2}

    for model, responses in ((QWEN, bodies), (WHISPER, [transcription])):
        n = len(responses)
        tolerance = n * TOLERANCE_PER_REQUEST
        stages = {"prefill": "prefill", "time_to_first_token": "ttft", **{s: s for s in STAGES}}
        for metric, field in stages.items():
            name = f"segprune_{metric}_seconds"
            assert after.value(f"{name}_count", model=model) == n, (model, metric)
            expected = sum(body["timings"][field] for body in responses) / 1000.0
            assert math.isclose(after.value(f"{name}_sum", model=model), expected, abs_tol=tolerance), (model, metric)
        # Every gap between tokens is one observation, and the gaps add up to the decode stage.
        gaps = after.value("segprune_inter_token_seconds_sum", model=model)
        decode = sum(body["timings"]["decode"] for body in responses) / 1000.0
        assert math.isclose(gaps, decode, abs_tol=tolerance), model

        e2e = after.value("segprune_e2e_request_seconds_count", model=model)
        assert e2e == n
        kept = sum(body["pruning"]["audio_tokens_kept"] for body in responses)
        before_pruning = sum(body["pruning"]["audio_tokens_before"] for body in responses)
        assert after.value("segprune_audio_tokens_total", model=model, stage="kept") == kept
        assert after.value("segprune_audio_tokens_total", model=model, stage="input") == before_pruning

    chat_usage = [body["usage"] for body in bodies]
    assert after.value("segprune_prompt_tokens_total", model=QWEN) == sum(u["prompt_tokens"] for u in chat_usage)
    generated = sum(u["completion_tokens"] for u in chat_usage)
    assert after.value("segprune_generation_tokens_total", model=QWEN) == generated
    assert after.value("segprune_inter_token_seconds_count", model=QWEN) == generated - len(bodies)
    assert after.value("segprune_prompt_tokens_total", model=WHISPER) == transcription["usage"]["input_tokens"]
    assert after.value("segprune_requests_total", model=QWEN, endpoint=CHAT, status="200") == 4
    assert after.value("segprune_requests_total", model=WHISPER, endpoint=TRANSCRIPTIONS, status="200") == 1


def test_errors_are_counted_without_new_model_series(demo_engines, live_server, wav):
    with live_server(create_app(settings(), demo_engines)) as url, httpx.Client(base_url=url, timeout=120) as http:
        assert http.post(CHAT, json={**chat_body(wav, 0.5), "model": "no-such-model"}).status_code == 404
        assert http.post(CHAT, json={**chat_body(wav, 0.5), "model": WHISPER}).status_code == 400  # cannot chat
        bad_audio = chat_body(wav, 0.5)
        bad_audio["messages"][0]["content"][0]["input_audio"]["data"] = base64.b64encode(b"not audio").decode()
        assert http.post(CHAT, json=bad_audio).status_code == 400
        assert http.post(CHAT, json={"model": QWEN}).status_code == 400  # invalid body: model not resolved
        assert http.get(CHAT).status_code == 405
        assert http.get("/v1/nothing").status_code == 404  # not an inference endpoint: not counted
        text = http.post(
            TRANSCRIPTIONS, files={"file": ("a.wav", wav)}, data={"model": WHISPER, "response_format": "text"}
        )
        assert text.status_code == 200
        metrics = scrape(http)

    requests = "segprune_requests_total"
    assert metrics.label_values(requests, "model") == {"", QWEN, WHISPER}
    assert metrics.value(requests, model="", endpoint=CHAT, status="404") == 1
    assert metrics.value(requests, model="", endpoint=CHAT, status="400") == 1
    assert metrics.value(requests, model="", endpoint=CHAT, status="405") == 1
    assert metrics.value(requests, model=WHISPER, endpoint=CHAT, status="400") == 1
    assert metrics.value(requests, model=QWEN, endpoint=CHAT, status="400") == 1
    assert metrics.label_values(requests, "endpoint") == {CHAT, TRANSCRIPTIONS}
    assert not any("no-such-model" in str(labels) for _, labels, _ in metrics.samples)
    assert metrics.value("segprune_prefill_seconds_count", model=QWEN) == 0  # errors feed no latency
    # A text transcript carries no timings, but its audio decoding was still measured.
    assert metrics.value("segprune_audio_decode_seconds_count", model=WHISPER) == 1
    assert metrics.value("segprune_audio_decode_seconds_sum", model=WHISPER) > 0


def test_client_leaving_a_stream_counts_as_499(demo_engines, live_server, wav):
    with live_server(create_app(settings(max_tokens_limit=512), demo_engines)) as url:
        with httpx.Client(base_url=url, timeout=120) as http:
            with http.stream("POST", CHAT, json=chat_body(wav, 0.25, stream=True, max_tokens=512)) as response:
                assert response.status_code == 200
                next(response.iter_lines())  # the role chunk, then hang up
        with httpx.Client(base_url=url, timeout=120) as http:

            def counted() -> bool:
                return scrape(http).value("segprune_requests_total", model=QWEN, status="499") == 1

            wait_for(counted)
            assert scrape(http).value("segprune_prefill_seconds_count", model=QWEN) == 0


def test_metrics_protected_with_health(demo_engines, live_server):
    app = create_app(settings(api_keys=["k"], protect_health_and_metrics=True), demo_engines)
    with live_server(app) as url:
        assert httpx.get(f"{url}/metrics").status_code == 401
        response = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer k"})
        assert response.status_code == 200 and "segprune_info" in response.text
        assert httpx.get(f"{url}/v1/models").status_code == 401
        metrics = Scrape(httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer k"}).text)
    assert metrics.value("segprune_requests_total") == 0  # /v1/models is not an inference endpoint


def test_metrics_public_by_default(demo_engines, live_server):
    with live_server(create_app(settings(api_keys=["k"]), demo_engines)) as url:
        assert httpx.post(f"{url}{CHAT}", json={"model": QWEN, "messages": []}).status_code == 401
        metrics = Scrape(httpx.get(f"{url}/metrics").text)
    assert metrics.value("segprune_requests_total", model="", endpoint=CHAT, status="401") == 1
