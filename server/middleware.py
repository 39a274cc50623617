"""ASGI middleware that answers before the app sees a request: API keys and the body size limit."""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import api_error_body, as_api_error, error_body

PUBLIC_PATHS = ("/health", "/ready", "/metrics")
DRAIN_FACTOR = 4  # a rejected body is read and discarded up to this many times the limit


async def send_error(send: Send, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


class APIKeyMiddleware:
    """`Authorization: Bearer <key>` on /v1 (and on health/metrics when protected); 401 otherwise."""

    def __init__(self, app: ASGIApp, *, keys: list[str], protect_health_and_metrics: bool) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]
        self.protect_public = protect_health_and_metrics

    def _protected(self, path: str) -> bool:
        if path in PUBLIC_PATHS:
            return self.protect_public
        return path == "/v1" or path.startswith("/v1/")

    def _valid(self, header: bytes) -> bool:
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        token = token.strip()
        # compare_digest against every key, without an early exit, so timing says nothing about the keys
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(token, key)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or not self._protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization")
        if header is not None and self._valid(header):
            await self.app(scope, receive, send)
            return
        if header is None:
            message = "You didn't provide an API key. Send it in the Authorization header: 'Bearer YOUR_KEY'."
        else:
            message = "Incorrect API key provided."
        body = error_body(message, "invalid_request_error", None, "invalid_api_key")
        await send_error(send, 401, body, {"WWW-Authenticate": "Bearer"})


class BodyLimitMiddleware:
    """413 for a body over the limit, whether declared by Content-Length or sent chunked.

    The body is read (up to the limit) before the app runs and then replayed, so the app never sees
    a partial body and memory per request stays bounded by the limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, receive: Receive, send: Send, more_body: bool) -> None:
        # Drain (a bounded amount of) the rest first: closing on a client that is still sending makes
        # it see a broken pipe instead of this 413.
        drained = 0
        while more_body and drained <= DRAIN_FACTOR * self.max_bytes:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            drained += len(message.get("body", b""))
            more_body = message.get("more_body", False)
        text = f"The request body is larger than {self.max_bytes} bytes (setting SEGPRUNE_MAX_REQUEST_BYTES)."
        await send_error(send, 413, error_body(text, "invalid_request_error", None, "request_too_large"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(receive, send, more_body=True)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._reject(receive, send, more_body=message.get("more_body", False))
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: waits for the client to disconnect

        await self.app(scope, replay, send)


class UnexpectedErrorMiddleware:
    """An unexpected exception becomes a logged 500 envelope, and the connection stays usable.

    (Starlette's own handler for Exception re-raises after answering, which makes uvicorn drop the
    keep-alive connection under the client's next request.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            error = as_api_error(exc)  # logs it
            if not started:
                await send_error(send, error.status_code, api_error_body(error))
