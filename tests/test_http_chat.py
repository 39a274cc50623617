"""POST /v1/chat/completions on a live uvicorn with the demo models, through the official openai SDK.

Every body and stream chunk is validated against OpenAI's own OpenAPI schemas.
"""

from __future__ import annotations

import base64
import json

import httpx
import openai
import pytest

from server.app import create_app
from server.settings import Settings
from tests.speech import synthesize_speech

QWEN = "demo-qwen2-audio"
WHISPER = "demo-whisper-tiny.en"
MAX_AUDIO_SECONDS = 20.0


@pytest.fixture(scope="module")
def base_url(demo_engines, live_server):
    settings = Settings(
        host="127.0.0.1",
        max_audio_seconds=MAX_AUDIO_SECONDS,
        max_audio_parts=3,
        max_tokens_limit=64,
        default_max_tokens=16,
    )
    with live_server(create_app(settings, demo_engines)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def short_wav(speech_dir) -> bytes:
    return synthesize_speech("The quick brown fox jumps over the lazy dog.", speech_dir).read_bytes()


@pytest.fixture(scope="module")
def long_wav(speech_dir) -> bytes:
    """About 10 s: enough audio tokens (~250) that 10 segments can each keep their quarter."""
    text = (
        "Segmentwise pruning keeps the most attended audio tokens in every part of the recording, "
        "so that the language model still hears the beginning, the middle and the end of it."
    )
    return synthesize_speech(text, speech_dir).read_bytes()


def audio_message(wav: bytes, question: str = "What do you hear?") -> dict:
    data = base64.b64encode(wav).decode()
    return {
        "role": "user",
        "content": [
            {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}},
            {"type": "text", "text": question},
        ],
    }


def sse_events(lines) -> list[str]:
    """The `data:` payloads of an SSE stream, in order."""
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


def test_chat_completion_with_input_audio(client, short_wav, openai_schema):
    raw = client.chat.completions.with_raw_response.create(
        model=QWEN, messages=[audio_message(short_wav)], max_tokens=8, temperature=0
    )
    body = raw.http_response.json()
    openai_schema("CreateChatCompletionResponse", body)

    completion = raw.parse()  # the SDK's own model of the response
    assert completion.object == "chat.completion" and completion.model == QWEN
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage.completion_tokens <= 8 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    pruning = body["pruning"]
    assert usage.prompt_tokens_details.audio_tokens == pruning["audio_tokens_kept"] > 0
    assert pruning["strategy"] == "segmentwise" and pruning["retention"] == 0.25 and pruning["windows"] == 1
    assert set(body["timings"]) >= {"audio_decode", "encoder", "scoring", "prefill", "ttft", "decode", "queue"}
    assert body["timings"]["audio_decode"] > 0 and body["timings"]["prefill"] > 0


def test_streaming_matches_non_streaming(client, short_wav, openai_schema):
    request = dict(model=QWEN, messages=[audio_message(short_wav)], max_tokens=8, temperature=0)
    with client.chat.completions.with_streaming_response.create(
        **request, stream=True, stream_options={"include_usage": True}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        payloads = sse_events(response.iter_lines())

    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    for chunk in chunks:
        openai_schema("CreateChatCompletionStreamResponse", chunk)
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finish, usage = chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] in ("stop", "length") and finish["choices"][0]["delta"] == {}
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] <= 8
    assert all(c["usage"] is None for c in chunks[:-1])
    assert finish["pruning"]["audio_tokens_kept"] == usage["usage"]["prompt_tokens_details"]["audio_tokens"]
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[1:-2])

    # The SDK's stream iterator sees the same thing; greedy decoding makes it equal the plain answer.
    sdk_text = "".join(
        chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(**request, stream=True)
    )
    plain = client.chat.completions.create(**request).choices[0].message.content
    assert streamed == sdk_text == plain


def test_stream_without_usage_has_no_usage_field(client, short_wav):
    stream = client.chat.completions.create(
        model=QWEN, messages=[audio_message(short_wav)], max_tokens=2, temperature=0, stream=True
    )
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason is not None
    assert all(chunk.usage is None for chunk in chunks)


def test_quarter_retention_keeps_a_quarter_of_the_audio_tokens(client, long_wav):
    def run(retention: float):
        return client.chat.completions.create(
            model=QWEN,
            messages=[audio_message(long_wav)],
            max_tokens=1,
            temperature=0,
            extra_body={"pruning": {"retention": retention}},
        )

    full, quarter = run(1.0), run(0.25)
    assert full.pruning["audio_tokens_before"] == quarter.pruning["audio_tokens_before"] > 200
    assert full.usage.prompt_tokens_details.audio_tokens == full.pruning["audio_tokens_before"]
    ratio = quarter.usage.prompt_tokens_details.audio_tokens / full.usage.prompt_tokens_details.audio_tokens
    assert 0.2 <= ratio <= 0.26, ratio
    # The LLM really saw fewer tokens: the prompt shrank by exactly the dropped audio tokens.
    dropped = full.pruning["audio_tokens_kept"] - quarter.pruning["audio_tokens_kept"]
    assert full.usage.prompt_tokens - quarter.usage.prompt_tokens == dropped
    assert quarter.pruning["retention"] == 0.25 and quarter.pruning["segments"] == 10


def test_pruning_strategy_and_segments_per_request(client, long_wav):
    completion = client.chat.completions.create(
        model=QWEN,
        messages=[audio_message(long_wav)],
        max_tokens=1,
        temperature=0,
        extra_body={"pruning": {"retention": 0.5, "strategy": "topk", "segments": 3}},
    )
    pruning = completion.pruning
    assert pruning["strategy"] == "topk" and pruning["retention"] == 0.5
    assert pruning["audio_tokens_kept"] == int(0.5 * pruning["audio_tokens_before"])


def test_multi_turn_with_several_audio_parts_and_a_data_uri(client, short_wav, openai_schema):
    data_uri = "data:audio/wav;base64," + base64.b64encode(short_wav).decode()
    messages = [
        {"role": "system", "content": "You describe sounds."},
        audio_message(short_wav, "First clip?"),
        {"role": "assistant", "content": "A voice."},
        {
            "role": "user",
            "content": [
                {"type": "audio_url", "audio_url": {"url": data_uri}},
                {"type": "text", "text": "And this one, compared to the first?"},
            ],
        },
    ]
    raw = client.chat.completions.with_raw_response.create(
        model=QWEN, messages=messages, max_tokens=2, temperature=0, extra_body={"pruning": {"retention": 1.0}}
    )
    body = raw.http_response.json()
    openai_schema("CreateChatCompletionResponse", body)
    # Two clips of the same audio: twice the tokens of one.
    assert body["pruning"]["audio_tokens_kept"] == body["pruning"]["audio_tokens_before"]
    assert body["pruning"]["audio_tokens_before"] % 2 == 0 and body["pruning"]["windows"] == 2


# --- errors -------------------------------------------------------------------------------------------
def error_of(exc: openai.APIStatusError, openai_schema) -> dict:
    body = exc.response.json()
    openai_schema("ErrorResponse", body)
    return body["error"]


def test_n_greater_than_one_is_a_400(client, short_wav, openai_schema):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=QWEN, messages=[audio_message(short_wav)], n=2, max_tokens=2)
    assert error_of(info.value, openai_schema)["param"] == "n"


def test_unknown_model_is_a_404(client, openai_schema):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    error = error_of(info.value, openai_schema)
    assert error["code"] == "model_not_found" and error["param"] == "model"


def test_chat_on_whisper_is_a_400(client, short_wav, openai_schema):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=WHISPER, messages=[audio_message(short_wav)])
    assert error_of(info.value, openai_schema)["code"] == "unsupported_task"


@pytest.mark.parametrize(
    ("pruning", "param"),
    [
        ({"retention": 0}, "pruning.retention"),
        ({"retention": 1.5}, "pruning.retention"),
        ({"retention": -0.1}, "pruning.retention"),
        ({"retention": "a lot"}, "pruning.retention"),
        ({"segments": 0}, "pruning.segments"),
        ({"strategy": "best"}, "pruning.strategy"),
        ({"retain": 0.5}, "pruning.retain"),
    ],
)
def test_bad_pruning_is_a_400_naming_the_field(client, short_wav, openai_schema, pruning, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=QWEN, messages=[audio_message(short_wav)], max_tokens=2, extra_body={"pruning": pruning}
        )
    assert error_of(info.value, openai_schema)["param"] == param


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ([{"type": "input_audio", "input_audio": {"data": "not base64!", "format": "wav"}}], "invalid_base64"),
        ([{"type": "input_audio", "input_audio": {"data": base64.b64encode(b"hello" * 50).decode(), "format": "wav"}}],
         "invalid_audio"),
        ([{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}], "invalid_audio"),
        ([{"type": "audio_url", "audio_url": {"url": "file:///etc/passwd"}}], "invalid_audio_url"),
        ([{"type": "audio_url", "audio_url": {"url": "http://127.0.0.1/a.wav"}}], "remote_audio_disabled"),
    ],
)  # fmt: skip
def test_bad_audio_is_a_400(client, openai_schema, content, code):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": content}], max_tokens=2)
    error = error_of(info.value, openai_schema)
    assert error["code"] == code and error["param"].startswith("messages[0].content[0]")


def test_limits_are_400s(client, short_wav, openai_schema):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=QWEN, messages=[audio_message(short_wav)] * 4, max_tokens=2)
    assert error_of(info.value, openai_schema)["code"] == "too_many_audio_parts"

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=QWEN, messages=[audio_message(short_wav)], max_tokens=65)
    assert error_of(info.value, openai_schema)["param"] == "max_tokens"


def test_audio_longer_than_the_limit_is_a_400(client, openai_schema):
    import io

    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(16000 * (MAX_AUDIO_SECONDS + 1)), dtype=np.float32), 16000, format="WAV")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=QWEN, messages=[audio_message(buffer.getvalue())], max_tokens=2)
    assert error_of(info.value, openai_schema)["code"] == "audio_too_long"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", {"content-type": "application/json"}),
        (b"[]", {"content-type": "application/json"}),
        (b'{"model": "demo-qwen2-audio"}', {"content-type": "application/json"}),
        (b'{"model": "demo-qwen2-audio", "messages": []}', {"content-type": "application/json"}),
        (b"model=demo-qwen2-audio", {"content-type": "application/x-www-form-urlencoded"}),
        (b"", {}),
    ],
)
def test_malformed_bodies_are_400_envelopes(base_url, openai_schema, body, headers):
    response = httpx.post(f"{base_url}/v1/chat/completions", content=body, headers=headers)
    assert response.status_code == 400, response.text
    openai_schema("ErrorResponse", response.json())
