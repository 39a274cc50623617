"""Audio Flamingo 3 behind the same API: chat with pruning, and transcription through its ASR prompt."""

from __future__ import annotations

import base64

import openai
import pytest

from segprune_core.engine import Engine
from server.app import create_app
from server.settings import Settings
from tests.speech import synthesize_speech

AF3 = "demo-audioflamingo3"


@pytest.fixture(scope="module")
def client(demo_dir, live_server):
    engine = Engine.load(AF3, device="cpu")
    settings = Settings(host="127.0.0.1", models=[AF3], default_max_tokens=2, max_tokens_limit=8)
    with live_server(create_app(settings, {engine.name: engine})) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def wav(speech_dir) -> bytes:
    text = "Audio Flamingo listens to the whole recording and answers questions about what it hears."
    return synthesize_speech(text, speech_dir).read_bytes()


def test_chat_with_pruning(client, wav, openai_schema):
    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}}
    messages = [{"role": "user", "content": [audio, {"type": "text", "text": "Describe the audio."}]}]
    kept = {}
    for retention in (1.0, 0.25):
        raw = client.chat.completions.with_raw_response.create(
            model=AF3, messages=messages, temperature=0, extra_body={"pruning": {"retention": retention}}
        )
        body = raw.http_response.json()
        openai_schema("CreateChatCompletionResponse", body)
        assert body["usage"]["prompt_tokens_details"]["audio_tokens"] == body["pruning"]["audio_tokens_kept"]
        kept[retention] = body["pruning"]["audio_tokens_kept"]
    assert 0.2 <= kept[0.25] / kept[1.0] <= 0.26


def test_transcription(client, wav, openai_schema):
    raw = client.audio.transcriptions.with_raw_response.create(
        model=AF3, file=("speech.wav", wav), response_format="verbose_json"
    )
    body = raw.http_response.json()
    openai_schema("CreateTranscriptionResponseVerboseJson", body)
    assert body["pruning"]["retention"] == 1.0 and len(body["segments"]) <= 1
