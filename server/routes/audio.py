"""POST /v1/audio/transcriptions and /v1/audio/translations (multipart), plain and streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from segprune_core.request import GenerationRequest, GenerationResult, Message, Strategy, Task, TextDelta
from server import sse
from server.audio_input import decode_clip
from server.errors import api_error_body, as_api_error, bad_request, request_timeout
from server.jobs import JobRun, run_to_result, start_stream
from server.params import pruning_params, sampling_params
from server.pool import ModelPool
from server.protocol import PruningOptions, ResponseFormat, TranscriptionResponse, TranscriptionVerboseResponse
from server.request_metrics import note_model
from server.responses import (
    transcript_delta_event,
    transcript_done_event,
    transcription_json,
    transcription_verbose_json,
)
from server.routes import INFERENCE_ERRORS, PoolDep, SettingsDep
from server.settings import Settings
from server.subtitles import to_srt, to_vtt

router = APIRouter(tags=["audio"])

# The openai SDK sends extra_body={"pruning": {"retention": 0.25}} on multipart as `pruning[retention]`.
Retention = Annotated[float | None, Form(alias="pruning[retention]", gt=0, le=1, allow_inf_nan=False)]
PruneStrategy = Annotated[Strategy | None, Form(alias="pruning[strategy]")]
Segments = Annotated[int | None, Form(alias="pruning[segments]", ge=1, le=10_000)]


@dataclass
class AudioForm:
    file: UploadFile
    model: str
    language: str | None
    prompt: str | None
    response_format: ResponseFormat
    temperature: float | None
    stream: bool
    timestamp_granularities: list[str] | None
    include: list[str] | None
    pruning: PruningOptions


def audio_form(
    file: Annotated[UploadFile, File(description="The audio file (wav, flac, ogg, mp3, ...).")],
    model: Annotated[str, Form()],
    language: Annotated[str | None, Form(max_length=16)] = None,
    prompt: Annotated[str | None, Form(max_length=10_000)] = None,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    temperature: Annotated[float | None, Form(ge=0, le=1, allow_inf_nan=False)] = None,
    stream: Annotated[bool, Form()] = False,
    timestamp_granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
    include: Annotated[list[str] | None, Form(alias="include[]")] = None,
    retention: Retention = None,
    strategy: PruneStrategy = None,
    segments: Segments = None,
) -> AudioForm:
    return AudioForm(
        file=file,
        model=model,
        language=language,
        prompt=prompt,
        response_format=response_format,
        temperature=temperature,
        stream=stream,
        timestamp_granularities=timestamp_granularities,
        include=include,
        pruning=PruningOptions(retention=retention, strategy=strategy, segments=segments),
    )


RESPONSES = {
    **INFERENCE_ERRORS,
    200: {
        "model": TranscriptionResponse | TranscriptionVerboseResponse,
        "content": {"text/plain": {}, "text/vtt": {}, "text/event-stream": {}},
    },
}


@router.post("/v1/audio/transcriptions", responses=RESPONSES)
async def create_transcription(
    request: Request,
    form: Annotated[AudioForm, Depends(audio_form)],
    pool: PoolDep,
    settings: SettingsDep,
) -> Response:
    return await _run(request, form, Task.TRANSCRIBE, pool, settings)


@router.post("/v1/audio/translations", responses=RESPONSES)
async def create_translation(
    request: Request,
    form: Annotated[AudioForm, Depends(audio_form)],
    pool: PoolDep,
    settings: SettingsDep,
) -> Response:
    return await _run(request, form, Task.TRANSLATE, pool, settings)


def _refuse_unsupported(form: AudioForm) -> None:
    if form.timestamp_granularities and set(form.timestamp_granularities) - {"segment"}:
        raise bad_request(
            "Only segment timestamps are supported.", param="timestamp_granularities", code="unsupported_parameter"
        )
    if form.include:
        raise bad_request("'include' (logprobs) is not supported by segprune.", param="include")


async def _run(request: Request, form: AudioForm, task: Task, pool: ModelPool, settings: Settings) -> Response:
    worker = pool.get(form.model)
    note_model(request, worker.engine.name)
    engine = worker.engine
    if task not in engine.tasks:
        supported = ", ".join(sorted(t.value for t in engine.tasks))
        raise bad_request(
            f"Model '{engine.name}' ({engine.family}) cannot {task.value}; it supports {supported}.",
            param="model",
            code="unsupported_task",
        )
    _refuse_unsupported(form)
    data = await form.file.read()
    max_seconds = min(settings.max_audio_seconds, engine.max_audio_seconds)
    clip, decode_ms = await run_in_threadpool(decode_clip, data, max_seconds=max_seconds, param="file")
    temperature = form.temperature or 0.0  # OpenAI's transcription default: deterministic
    generation = GenerationRequest(
        messages=(Message(role="user", content=(clip,)),),
        sampling=sampling_params(
            max_new_tokens=settings.max_tokens_limit,  # a transcript runs as long as the audio needs
            temperature=temperature,
            top_p=None,
            seed=None,
            default_temperature=0.0,
        ),
        pruning=pruning_params(form.pruning, settings, task, seed=None),
        task=task,
        language=form.language,
        prompt=form.prompt,
    )
    timeout = settings.request_timeout_seconds
    if form.stream:
        run, first = await start_stream(request, worker, generation, timeout)
        events = _transcript_events(run, first, decode_ms)
        return StreamingResponse(events, media_type="text/event-stream", headers=sse.HEADERS)
    result = await run_to_result(request, worker, generation, timeout)
    result.timings.audio_decode = decode_ms  # also for text/srt/vtt, which carry no timings: metrics read it
    return _format(result, form, task, temperature, decode_ms)


def _format(result: GenerationResult, form: AudioForm, task: Task, temperature: float, decode_ms: float) -> Response:
    match form.response_format:
        case "json":
            return JSONResponse(transcription_json(result, decode_ms))
        case "verbose_json":
            body = transcription_verbose_json(
                result, task=task.value, language=form.language, temperature=temperature, audio_decode_ms=decode_ms
            )
            return JSONResponse(body)
        case "text":
            return PlainTextResponse(result.text + "\n")
        case "srt":
            return PlainTextResponse(to_srt(result.segments))
        case "vtt":
            return PlainTextResponse(to_vtt(result.segments), media_type="text/vtt")
    raise AssertionError(form.response_format)


async def _transcript_events(run: JobRun, event, decode_ms: float) -> AsyncIterator[str]:
    """OpenAI's transcription stream: transcript.text.delta events, then one transcript.text.done."""
    try:
        while True:
            if isinstance(event, TextDelta):
                if event.text:
                    yield sse.event(transcript_delta_event(event.text))
            elif isinstance(event, GenerationResult):
                if event.finish_reason == "cancelled":
                    raise request_timeout(run.timeout_seconds)
                yield sse.event(transcript_done_event(event, decode_ms))
                return
            event = await run.next_event()
    except Exception as exc:
        yield sse.event(api_error_body(as_api_error(exc)))
    finally:
        run.job.cancel()
