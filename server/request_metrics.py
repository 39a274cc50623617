"""Records every inference request in the metrics once its response has been sent, streams included.

The middleware sees what only HTTP knows (endpoint, status, whole duration, whether the last byte went
out); the route notes what only it knows (the served model, the job's run) on the request's record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segprune_core.request import GenerationResult
from server.metrics import INFERENCE_ENDPOINTS, UNRESOLVED_MODEL, Metrics

if TYPE_CHECKING:
    from server.jobs import JobRun

log = logging.getLogger("segprune.server")

STATE_KEY = "segprune_request_record"  # in scope["state"], which request.state reads and writes
CLIENT_CLOSED = 499  # nginx's status for a client that left before its response was complete
SERVER_ERROR = 500
TIMED_OUT = 504


@dataclass
class RequestRecord:
    model: str = UNRESOLVED_MODEL
    run: JobRun | None = None

    @property
    def result(self) -> GenerationResult | None:
        """The job's final result, unless it was cut short (a cancelled result answered 504 or nobody)."""
        final = self.run.final if self.run is not None else None
        if final is None or final.finish_reason == "cancelled":
            return None
        return final

    def status(self, http_status: int | None, body_complete: bool, raised: bool) -> int:
        """The HTTP status, except where the response does not tell how the request ended."""
        if http_status is None:
            return SERVER_ERROR if raised else CLIENT_CLOSED
        if not body_complete:
            return CLIENT_CLOSED
        if http_status == 200 and self.run is not None and self.result is None:
            # A stream that failed after its 200 ended with an error event: a timeout or an engine failure.
            return TIMED_OUT if time.monotonic() >= self.run.deadline else SERVER_ERROR
        return http_status


def _record(request: Request) -> RequestRecord | None:
    return request.scope.get("state", {}).get(STATE_KEY)


def note_model(request: Request, model: str) -> None:
    """The request names a served model: count it under that model from here on."""
    if (record := _record(request)) is not None:
        record.model = model


def note_run(request: Request, run: JobRun) -> None:
    """The request's job: its final result gives the timings and tokens to record."""
    if (record := _record(request)) is not None:
        record.run = run


class MetricsMiddleware:
    """Times inference requests from the first byte in to the last byte out and records them."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in INFERENCE_ENDPOINTS:
            await self.app(scope, receive, send)
            return
        record = RequestRecord()
        scope.setdefault("state", {})[STATE_KEY] = record
        started = time.perf_counter()
        http_status: int | None = None
        body_complete = raised = False

        async def tracking_send(message: Message) -> None:
            nonlocal http_status, body_complete
            await send(message)
            if message["type"] == "http.response.start":
                http_status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                body_complete = True

        try:
            await self.app(scope, receive, tracking_send)
        except BaseException:
            raised = True
            raise
        finally:
            try:
                self.metrics.record_request(
                    endpoint=scope["path"],
                    model=record.model,
                    status=record.status(http_status, body_complete, raised),
                    seconds=time.perf_counter() - started,
                    result=record.result,
                )
            except Exception:  # metrics must never turn a served request into an error
                log.exception("recording request metrics failed")
