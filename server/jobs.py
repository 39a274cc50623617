"""Running a GenerationRequest on a model's worker from a route: 429, timeout and client disconnects."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import Request

from segprune_core.request import GenerationRequest, GenerationResult, StreamEvent
from server.errors import queue_full, request_timeout
from server.request_metrics import note_run
from server.worker import Job, ModelWorker, QueueFullError


def submit(worker: ModelWorker, request: GenerationRequest, *, streaming: bool) -> Job:
    try:
        return worker.submit(request, streaming=streaming)
    except QueueFullError as exc:
        raise queue_full(worker.engine.name, exc.retry_after) from exc


async def _cancel_on_disconnect(request: Request, job: Job) -> None:
    # After the body is read, receive() only returns once the client disconnects.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancel()
            return


@contextlib.asynccontextmanager
async def watching_disconnect(request: Request, job: Job) -> AsyncIterator[None]:
    watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
    try:
        yield
    finally:
        # Wait for the watcher to be gone: a streaming response starts its own disconnect listener next.
        watcher.cancel()
        await asyncio.wait([watcher])


class JobRun:
    """Awaits a job's events under one deadline (the request timeout, counted from submission)."""

    def __init__(self, job: Job, timeout_seconds: float) -> None:
        self.job = job
        self.timeout_seconds = timeout_seconds
        self.deadline = time.monotonic() + timeout_seconds
        self.final: GenerationResult | None = None  # metrics read it once the response is sent

    async def next_event(self) -> StreamEvent:
        try:
            async with asyncio.timeout_at(self._loop_deadline()):
                event = await self.job.next_event()
        except TimeoutError:
            self.job.cancel()
            raise request_timeout(self.timeout_seconds) from None
        if isinstance(event, GenerationResult):
            self.final = event
        return event

    async def result(self) -> GenerationResult:
        while True:
            event = await self.next_event()
            if isinstance(event, GenerationResult):
                if event.finish_reason == "cancelled":  # only a timeout or a departed client gets here
                    raise request_timeout(self.timeout_seconds)
                return event

    def _loop_deadline(self) -> float:
        loop = asyncio.get_running_loop()
        return loop.time() + max(0.0, self.deadline - time.monotonic())


async def run_to_result(request: Request, worker: ModelWorker, generation: GenerationRequest, timeout: float):
    """Non-streaming: submit, wait for the result, cancel the job if the client leaves or time runs out."""
    job = submit(worker, generation, streaming=False)
    run = JobRun(job, timeout)
    note_run(request, run)
    try:
        async with watching_disconnect(request, job):
            return await run.result()
    finally:
        job.cancel()  # no-op once finished; frees the worker if we left early (cancelled task, error)


async def start_stream(
    request: Request, worker: ModelWorker, generation: GenerationRequest, timeout: float
) -> tuple[JobRun, StreamEvent]:
    """Streaming: submit and wait for the first event before any byte of the 200 goes out, so errors
    raised before the first token (bad audio, full queue) still get their own HTTP status."""
    job = submit(worker, generation, streaming=True)
    run = JobRun(job, timeout)
    note_run(request, run)
    try:
        async with watching_disconnect(request, job):
            return run, await run.next_event()
    except BaseException:
        job.cancel()
        raise
