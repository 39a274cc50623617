"""POST /v1/chat/completions, plain and streamed (SSE)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from segprune_core.request import GenerationResult, Task, TextDelta
from server import sse
from server.chat_input import build_chat_input
from server.errors import api_error_body, as_api_error, bad_request, request_timeout
from server.jobs import JobRun, run_to_result, start_stream
from server.protocol import ChatCompletionRequest, ChatCompletionResponse
from server.request_metrics import note_model
from server.responses import ChunkFactory, chat_completion
from server.routes import INFERENCE_ERRORS, PoolDep, SettingsDep

router = APIRouter(tags=["chat"])


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletionResponse,
    responses={**INFERENCE_ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    pool: PoolDep,
    settings: SettingsDep,
):
    worker = pool.get(body.model)
    note_model(request, worker.engine.name)
    engine = worker.engine
    if Task.CHAT not in engine.tasks:
        supported = ", ".join(sorted(t.value for t in engine.tasks))
        raise bad_request(
            f"Model '{engine.name}' ({engine.family}) cannot chat; it supports {supported}. "
            "Use /v1/audio/transcriptions.",
            param="model",
            code="unsupported_task",
        )
    chat = await build_chat_input(body, settings, min(settings.max_audio_seconds, engine.max_audio_seconds))
    timeout = settings.request_timeout_seconds
    if not body.stream:
        result = await run_to_result(request, worker, chat.generation, timeout)
        return JSONResponse(chat_completion(result, model=engine.name, audio_decode_ms=chat.audio_decode_ms))

    run, first = await start_stream(request, worker, chat.generation, timeout)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    chunks = ChunkFactory(engine.name, include_usage=include_usage)
    events = _chat_events(run, first, chunks, chat.audio_decode_ms)
    return StreamingResponse(events, media_type="text/event-stream", headers=sse.HEADERS)


async def _chat_events(run: JobRun, event, chunks: ChunkFactory, audio_decode_ms: float) -> AsyncIterator[str]:
    """Role delta, content deltas, the finish_reason chunk, the usage chunk if asked, then [DONE].

    A client that disconnects cancels this generator; `finally` then frees the worker at its next token.
    """
    try:
        yield sse.event(chunks.role())
        while True:
            if isinstance(event, TextDelta):
                if event.text:
                    yield sse.event(chunks.content(event.text))
            elif isinstance(event, GenerationResult):
                if event.finish_reason == "cancelled":
                    raise request_timeout(run.timeout_seconds)
                yield sse.event(chunks.finish(event, audio_decode_ms))
                if chunks.include_usage:
                    yield sse.event(chunks.usage(event))
                break
            event = await run.next_event()
    except Exception as exc:  # the 200 is already sent: an error can only travel as an event now
        yield sse.event(api_error_body(as_api_error(exc)))
    finally:
        run.job.cancel()
    yield sse.DONE
