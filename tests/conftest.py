"""Shared fixtures. Tests never reach a model hub: every model is built locally (segprune_core.demo_models)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before any test module imports transformers / huggingface_hub, which read it at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The three demo models, built once per session, and `SEGPRUNE_DEMO_DIR` pointing at them.

    Set `SEGPRUNE_TEST_DEMO_DIR` to keep the build between sessions (the first build takes ~10 s).
    """
    from segprune_core.demo_models import build_all

    shared = os.environ.get("SEGPRUNE_TEST_DEMO_DIR")
    cache_dir = Path(shared) if shared else tmp_path_factory.mktemp("demo")
    build_all(cache_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEGPRUNE_DEMO_DIR", str(cache_dir))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield cache_dir


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cache directory for `tests.speech.synthesize_speech`."""
    return tmp_path_factory.mktemp("speech")


# --- HTTP server tests (tests/test_http_*.py, tests/test_server_*.py) ---------------------------------
# OpenAI's own OpenAPI description lives in shared/, beside the repository (as on every machine and in CI).
OPENAPI_PATH = Path(__file__).resolve().parents[2] / "shared" / "openai-openapi" / "openapi.json"


def _nullable_to_2020_12(node: object) -> object:
    """OpenAI's document mixes OpenAPI 3.0's `nullable: true` into 3.1 schemas; JSON Schema 2020-12
    ignores that keyword, so give it its meaning: the value may also be null."""
    if isinstance(node, list):
        return [_nullable_to_2020_12(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_to_2020_12(value) for key, value in node.items()}
    if node.pop("nullable", False) is not True:
        return node
    if isinstance(node.get("type"), str) and "$ref" not in node:
        node["type"] = [node["type"], "null"]
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        return node
    return {"anyOf": [node, {"type": "null"}]}


@pytest.fixture(scope="session")
def openai_schema():
    """`openai_schema(name, instance)` validates against OpenAI's `components.schemas[name]`
    (JSON Schema 2020-12, `#/components/schemas/...` refs resolved through a referencing Registry)."""
    import json

    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = _nullable_to_2020_12(json.loads(OPENAPI_PATH.read_text()))
    registry = Registry().with_resource("urn:openai", Resource.from_contents(document, DRAFT202012))
    validators: dict[str, Draft202012Validator] = {}

    def validate(name: str, instance: object) -> None:
        assert name in document["components"]["schemas"], name
        if name not in validators:
            schema = {"$ref": f"urn:openai#/components/schemas/{name}"}
            validators[name] = Draft202012Validator(schema, registry=registry)
        errors = sorted(validators[name].iter_errors(instance), key=lambda e: list(e.absolute_path))
        assert not errors, f"{name}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])

    return validate


@pytest.fixture(scope="session")
def demo_engines(demo_dir: Path) -> dict:
    """The demo Qwen2-Audio and Whisper engines, loaded once. One live server at a time may use them
    (an engine gets exactly one worker thread)."""
    from segprune_core.engine import Engine

    engines = [Engine.load("demo-qwen2-audio", device="cpu"), Engine.load("demo-whisper-tiny.en", device="cpu")]
    return {engine.name: engine for engine in engines}


@pytest.fixture(scope="session")
def live_server():
    """`with live_server(app) as base_url:` runs uvicorn on 127.0.0.1 (a free port) in a thread."""
    from server.embedded import serve_in_thread

    return serve_in_thread
