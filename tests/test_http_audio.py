"""POST /v1/audio/transcriptions and /v1/audio/translations on a live uvicorn, through the openai SDK.

espeak-ng speech transcribed by demo-whisper-tiny.en (real tiny.en weights) must come back exactly as
the engine transcribes it directly, in every response format.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
import srt
import webvtt

from segprune_core.audio import decode_audio
from segprune_core.request import GenerationRequest, Message, PruningParams, SamplingParams, Task
from server.app import create_app
from server.settings import Settings
from tests.speech import synthesize_speech

WHISPER = "demo-whisper-tiny.en"
QWEN = "demo-qwen2-audio"
SENTENCE = "The quick brown fox jumps over the lazy dog."
SETTINGS = Settings(host="127.0.0.1", max_tokens_limit=128, default_max_tokens=16)


@pytest.fixture(scope="module")
def wav(speech_dir) -> bytes:
    return synthesize_speech(SENTENCE, speech_dir).read_bytes()


@pytest.fixture(scope="module")
def engine_transcript(demo_engines, wav) -> str:
    """What the engine itself produces with the server's transcription settings (before the server
    starts: an engine must only ever run on one thread at a time)."""
    request = GenerationRequest(
        messages=(Message("user", (decode_audio(wav),)),),
        sampling=SamplingParams(max_tokens=SETTINGS.max_tokens_limit, temperature=0.0),
        pruning=PruningParams(retention=SETTINGS.transcription_retention, segments=SETTINGS.default_segments),
        task=Task.TRANSCRIBE,
    )
    return demo_engines[WHISPER].generate(request).text


@pytest.fixture(scope="module")
def base_url(demo_engines, engine_transcript, live_server):
    with live_server(create_app(SETTINGS, demo_engines)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120)


def transcribe(client, wav: bytes, **kwargs):
    return client.audio.transcriptions.with_raw_response.create(
        model=kwargs.pop("model", WHISPER), file=("speech.wav", wav, "audio/wav"), **kwargs
    )


def words(texts) -> list[str]:
    return " ".join(texts).split()


def test_engine_transcript_is_the_sentence(engine_transcript):
    assert "quick brown fox" in engine_transcript.lower()  # real tiny.en weights: a real transcript


def test_json(client, wav, engine_transcript, openai_schema):
    raw = transcribe(client, wav)
    body = raw.http_response.json()
    openai_schema("CreateTranscriptionResponseJson", body)
    assert raw.parse().text == body["text"] == engine_transcript
    assert body["usage"]["type"] == "tokens" and body["usage"]["input_token_details"]["audio_tokens"] > 0
    # Transcription defaults to retention 1.0: every audio token is kept.
    assert body["pruning"]["retention"] == 1.0
    assert body["pruning"]["audio_tokens_kept"] == body["pruning"]["audio_tokens_before"]


def test_verbose_json(client, wav, engine_transcript, openai_schema):
    raw = transcribe(client, wav, response_format="verbose_json", timestamp_granularities=["segment"])
    body = raw.http_response.json()
    openai_schema("CreateTranscriptionResponseVerboseJson", body)
    parsed = raw.parse()
    assert parsed.text == engine_transcript and parsed.language == "unknown"
    duration = decode_audio(wav).duration
    assert isinstance(body["duration"], float) and body["duration"] == pytest.approx(duration)
    segments = body["segments"]
    assert [s["id"] for s in segments] == list(range(len(segments))) and segments
    # Whisper's own timestamps: in order, inside the audio
    times = [t for s in segments for t in (s["start"], s["end"])]
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= duration + 0.02
    assert words(s["text"] for s in segments) == words([engine_transcript])


def test_text(client, wav, engine_transcript):
    text = client.audio.transcriptions.create(model=WHISPER, file=("speech.wav", wav), response_format="text")
    assert text.strip() == engine_transcript


def test_srt_parses_as_subtitles(client, wav, engine_transcript):
    text = client.audio.transcriptions.create(model=WHISPER, file=("speech.wav", wav), response_format="srt")
    subtitles = list(srt.parse(text, ignore_errors=False))
    assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1)) and subtitles
    assert all(s.start < s.end for s in subtitles)
    assert words(s.content for s in subtitles) == words([engine_transcript])
    assert srt.compose(subtitles, reindex=False, strict=True).strip() == text.strip()


def test_vtt_parses_as_subtitles(client, wav, engine_transcript):
    text = client.audio.transcriptions.create(model=WHISPER, file=("speech.wav", wav), response_format="vtt")
    assert text.startswith("WEBVTT\n\n")
    captions = webvtt.from_string(text, strict=True).captions
    assert captions and all(c.start_in_seconds < c.end_in_seconds for c in captions)
    assert words(c.text for c in captions) == words([engine_transcript])


def test_streaming_events(client, wav, engine_transcript, openai_schema):
    with client.audio.transcriptions.with_streaming_response.create(
        model=WHISPER, file=("speech.wav", wav), stream=True
    ) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    *deltas, done = events
    for event in deltas:
        openai_schema("TranscriptTextDeltaEvent", event)
        openai_schema("CreateTranscriptionResponseStreamEvent", event)
    openai_schema("TranscriptTextDoneEvent", done)
    openai_schema("CreateTranscriptionResponseStreamEvent", done)
    assert deltas and "".join(e["delta"] for e in deltas) == done["text"] == engine_transcript

    sdk_events = list(client.audio.transcriptions.create(model=WHISPER, file=("speech.wav", wav), stream=True))
    assert [e.type for e in sdk_events] == ["transcript.text.delta"] * (len(sdk_events) - 1) + ["transcript.text.done"]
    assert sdk_events[-1].text == engine_transcript


def test_pruning_through_extra_body_form_fields(client, wav, openai_schema):
    """The SDK turns extra_body={"pruning": {...}} on multipart into `pruning[retention]` form fields."""
    raw = transcribe(client, wav, extra_body={"pruning": {"retention": 0.5, "strategy": "topk"}})
    body = raw.http_response.json()
    openai_schema("CreateTranscriptionResponseJson", body)
    pruning = body["pruning"]
    assert pruning["retention"] == 0.5 and pruning["strategy"] == "topk"
    assert pruning["audio_tokens_kept"] == pruning["audio_tokens_before"] // 2


def test_translation(client, wav, engine_transcript, openai_schema):
    raw = client.audio.translations.with_raw_response.create(model=WHISPER, file=("speech.wav", wav))
    body = raw.http_response.json()
    openai_schema("CreateTranslationResponseJson", body)
    verbose = client.audio.translations.with_raw_response.create(
        model=WHISPER, file=("speech.wav", wav), response_format="verbose_json"
    ).http_response.json()
    openai_schema("CreateTranslationResponseVerboseJson", verbose)
    assert verbose["language"] == "english" and verbose["text"] == body["text"]


def test_audio_llm_transcribes_through_its_asr_prompt(client, wav, openai_schema):
    raw = transcribe(client, wav, model=QWEN, response_format="verbose_json")
    body = raw.http_response.json()
    openai_schema("CreateTranscriptionResponseVerboseJson", body)  # the demo LLM is random: text is noise
    assert body["pruning"]["audio_tokens_before"] > 0 and body["usage"]["seconds"] == pytest.approx(body["duration"])


# --- errors -------------------------------------------------------------------------------------------
def error_of(exc: openai.APIStatusError, openai_schema) -> dict:
    body = exc.response.json()
    openai_schema("ErrorResponse", body)
    return body["error"]


def test_unknown_model_is_a_404(client, wav, openai_schema):
    with pytest.raises(openai.NotFoundError) as info:
        client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", wav))
    assert error_of(info.value, openai_schema)["param"] == "model"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"file": ("noise.wav", b"RIFF not really a wav file")}, "file"),
        ({"file": ("empty.wav", b"")}, "file"),
        ({"response_format": "docx"}, "response_format"),
        ({"temperature": 1.5}, "temperature"),
        ({"timestamp_granularities": ["word"]}, "timestamp_granularities"),
        ({"extra_body": {"pruning": {"retention": 2}}}, "pruning[retention]"),
        ({"extra_body": {"pruning": {"segments": 0}}}, "pruning[segments]"),
        ({"extra_body": {"pruning": {"strategy": "magic"}}}, "pruning[strategy]"),
    ],
)
def test_bad_requests_are_400s(client, wav, openai_schema, kwargs, param):
    kwargs.setdefault("file", ("speech.wav", wav))
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(model=WHISPER, **kwargs)
    assert error_of(info.value, openai_schema)["param"] == param


def test_missing_file_and_wrong_content_type_are_400s(base_url, openai_schema):
    for request in (
        dict(data={"model": WHISPER}, files={"unrelated": ("x", b"x")}),
        dict(json={"model": WHISPER, "file": "speech.wav"}),
    ):
        response = httpx.post(f"{base_url}/v1/audio/transcriptions", **request)
        assert response.status_code == 400, response.text
        openai_schema("ErrorResponse", response.json())
