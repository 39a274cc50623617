"""One inference thread per engine, fed by a bounded queue.

Engines are blocking and not thread-safe, so each gets exactly one worker thread. The event loop
never runs model code: a route submits a Job and awaits its events, which the worker hands back with
`loop.call_soon_threadsafe`. Cancelling a job (client gone, timeout) makes the engine's should_stop
true, so the worker moves on at the next token; a job cancelled while still waiting is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field

from segprune_core.errors import SegpruneError
from segprune_core.request import GenerationRequest, GenerationResult, StreamEvent

log = logging.getLogger("segprune.server")


class QueueFullError(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full, retry after {retry_after} s")
        self.retry_after = retry_after


class WorkerStoppedError(Exception):
    """The worker shut down before it ran the job."""


@dataclass(eq=False)
class Job:
    request: GenerationRequest
    streaming: bool
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[StreamEvent | BaseException] = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.perf_counter)

    def cancel(self) -> None:
        self.cancelled.set()

    async def next_event(self) -> StreamEvent:
        """The next TextDelta or the final GenerationResult; raises the job's error, if any."""
        event = await self.events.get()
        if isinstance(event, BaseException):
            raise event
        return event

    async def result(self) -> GenerationResult:
        while True:
            event = await self.next_event()
            if isinstance(event, GenerationResult):
                return event

    def _deliver(self, event: StreamEvent | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop is closed: the server is gone, nobody is listening
            pass


_STOP = object()  # tells the thread to exit once everything queued before it has run


class ModelWorker:
    def __init__(self, engine, *, queue_size: int) -> None:
        self.engine = engine
        self.queue_size = queue_size
        self._queue: queue.Queue[Job | object] = queue.Queue()  # bounded by _slots, not by maxsize
        self._slots = threading.Semaphore(queue_size + 1)  # the running job plus queue_size waiting
        self._running: Job | None = None
        self._service_seconds = 1.0  # moving average of one request's run time, for Retry-After
        self._thread = threading.Thread(target=self._run, name=f"segprune-worker-{engine.name}", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    @property
    def running(self) -> int:
        return int(self._running is not None)

    def submit(self, request: GenerationRequest, *, streaming: bool) -> Job:
        """Queue a request; raises QueueFullError at once (never blocks) when the queue is full."""
        if not self._slots.acquire(blocking=False):
            raise QueueFullError(self.retry_after())
        job = Job(request=request, streaming=streaming, loop=asyncio.get_running_loop())
        self._queue.put_nowait(job)
        return job

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead at the recent service rate."""
        estimate = self._service_seconds * (self.waiting + self.running) / max(self.queue_size, 1)
        return max(1, min(60, math.ceil(estimate)))

    def stop(self, timeout: float | None = None) -> None:
        """Finish what is queued, then end the thread (SIGTERM drains rather than drops)."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            assert isinstance(job, Job)
            try:
                if not job.cancelled.is_set():
                    self._running = job
                    started = time.perf_counter()
                    self._execute(job, queue_ms=(started - job.enqueued_at) * 1000.0)
                    self._service_seconds = 0.8 * self._service_seconds + 0.2 * (time.perf_counter() - started)
            finally:
                self._running = None
                self._slots.release()

    def _execute(self, job: Job, queue_ms: float) -> None:
        should_stop = job.cancelled.is_set
        try:
            if job.streaming:
                for event in self.engine.stream(job.request, should_stop):
                    if isinstance(event, GenerationResult):
                        event.timings.queue = queue_ms
                    job._deliver(event)
            else:
                result = self.engine.generate(job.request, should_stop)
                result.timings.queue = queue_ms
                job._deliver(result)
        except SegpruneError as exc:
            job._deliver(exc)
        except Exception as exc:  # e.g. out of memory: fail this request, keep the worker serving
            log.exception("engine %s failed a request", self.engine.name)
            job._deliver(exc)
