"""GET /v1/models, /health, /ready, start-up loading, unknown routes and methods."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

import server.pool
from server.app import create_app
from server.settings import Settings

SETTINGS = Settings(host="127.0.0.1")


@pytest.fixture(scope="module")
def base_url(demo_engines, live_server):
    with live_server(create_app(SETTINGS, demo_engines)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def test_list_models(client, base_url, openai_schema):
    body = httpx.get(f"{base_url}/v1/models").json()
    openai_schema("ListModelsResponse", body)
    for card in body["data"]:
        openai_schema("Model", card)
    models = {model.id: model for model in client.models.list()}
    assert set(models) == {"demo-qwen2-audio", "demo-whisper-tiny.en"}
    assert models["demo-qwen2-audio"].owned_by == "segprune"
    assert models["demo-qwen2-audio"].tasks == ["chat", "transcribe", "translate"]
    assert models["demo-whisper-tiny.en"].family == "whisper"


def test_retrieve_model(client, base_url, openai_schema):
    body = httpx.get(f"{base_url}/v1/models/demo-whisper-tiny.en").json()
    openai_schema("Model", body)
    assert client.models.retrieve("demo-whisper-tiny.en").id == "demo-whisper-tiny.en"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-4o")
    openai_schema("ErrorResponse", info.value.response.json())
    assert info.value.response.json()["error"]["code"] == "model_not_found"


def test_health_and_ready(base_url):
    assert httpx.get(f"{base_url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{base_url}/ready")
    assert ready.status_code == 200 and set(ready.json()["models"]) == {"demo-qwen2-audio", "demo-whisper-tiny.en"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/nothing", 404), ("POST", "/v1/completions", 404), ("GET", "/", 404),
     ("DELETE", "/v1/models", 405), ("GET", "/v1/chat/completions", 405), ("PUT", "/health", 405)],
)  # fmt: skip
def test_unknown_routes_and_methods_are_openai_errors(base_url, openai_schema, method, path, status):
    response = httpx.request(method, f"{base_url}{path}")
    assert response.status_code == status
    openai_schema("ErrorResponse", response.json())


def test_openapi_document_describes_the_endpoints(base_url):
    paths = httpx.get(f"{base_url}/openapi.json").json()["paths"]
    assert {"/v1/chat/completions", "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/models"} <= set(paths)
    assert "400" in paths["/v1/chat/completions"]["post"]["responses"]


def test_models_load_in_the_background(demo_engines, live_server, monkeypatch):
    """/health answers while models load; /ready and /v1 turn usable only once they are loaded."""
    release = threading.Event()

    def slow_load(settings):
        release.wait(30)
        return {"demo-whisper-tiny.en": demo_engines["demo-whisper-tiny.en"]}

    monkeypatch.setattr(server.pool, "load_engines", slow_load)
    with live_server(create_app(Settings(host="127.0.0.1", models=["demo-whisper-tiny.en"]))) as url:
        assert httpx.get(f"{url}/health").status_code == 200
        loading = httpx.get(f"{url}/ready")
        assert loading.status_code == 503 and loading.json()["error"]["code"] == "model_loading"
        assert httpx.get(f"{url}/v1/models").json() == {"object": "list", "data": []}
        early = httpx.post(f"{url}/v1/audio/transcriptions", data={"model": "x"}, files={"file": ("a.wav", b"x")})
        assert early.status_code == 503 and "Retry-After" in early.headers
        release.set()
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]] == ["demo-whisper-tiny.en"]


def test_failed_load_makes_health_fail(live_server, tmp_path):
    app = create_app(Settings(host="127.0.0.1", models=[str(tmp_path / "no-such-model")]))
    with live_server(app) as url:
        deadline = time.monotonic() + 30
        while (health := httpx.get(f"{url}/health")).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert health.status_code == 503 and "Loading the models failed" in health.json()["error"]["message"]
        assert httpx.get(f"{url}/ready").status_code == 503
