"""Every error leaves the server as OpenAI's envelope {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from segprune_core.errors import SegpruneError

log = logging.getLogger("segprune.server")


class APIError(Exception):
    """An error the server raises on purpose, with its HTTP status and OpenAI fields."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(model: str) -> APIError:
    return APIError(404, f"The model '{model}' does not exist.", param="model", code="model_not_found")


def queue_full(model: str, retry_after: int) -> APIError:
    return APIError(
        429,
        f"Model '{model}' is busy: its request queue is full. Retry after {retry_after} s.",
        error_type="rate_limit_error",
        code="queue_full",
        headers={"Retry-After": str(retry_after)},
    )


def request_timeout(seconds: float) -> APIError:
    return APIError(
        504,
        f"The request did not finish within {seconds:g} s (setting SEGPRUNE_REQUEST_TIMEOUT_SECONDS).",
        error_type="server_error",
        code="request_timeout",
    )


def not_ready() -> APIError:
    return APIError(
        503,
        "The models are still loading.",
        error_type="server_error",
        code="model_loading",
        headers={"Retry-After": "5"},
    )


def internal_error() -> APIError:
    return APIError(500, "The server had an error while processing your request.", error_type="server_error")


def from_engine(exc: SegpruneError) -> APIError:
    return APIError(exc.status_code, exc.message, error_type=exc.error_type, param=exc.param, code=exc.code)


def error_body(message: str, error_type: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def api_error_body(exc: APIError) -> dict[str, Any]:
    return error_body(exc.message, exc.error_type, exc.param, exc.code)


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(api_error_body(exc), status_code=exc.status_code, headers=exc.headers)


def as_api_error(exc: BaseException) -> APIError:
    """Any exception -> APIError; unexpected ones become a logged 500 that leaks no internals."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, SegpruneError):
        return from_engine(exc)
    log.error("request failed", exc_info=exc)
    return internal_error()


def validation_param(loc: Sequence[str | int]) -> str | None:
    """('body', 'messages', 0, 'content') -> 'messages[0].content', OpenAI's way of naming a field."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:]
    param = ""
    for part in parts:
        if isinstance(part, int):
            param += f"[{part}]"
        elif not str(part).startswith(("function-", "tagged-union[")):  # pydantic's internal union steps
            param += f".{part}" if param else str(part)
    return param or None


def validation_error(errors: Sequence[Mapping[str, Any]]) -> APIError:
    first = errors[0] if errors else {"msg": "Invalid request.", "loc": (), "type": ""}
    if first.get("type") == "json_invalid":
        return bad_request("We could not parse the JSON body of your request. It must be a valid JSON object.")
    param = validation_param(first.get("loc", ()))
    message = str(first.get("msg", "Invalid request."))
    if param:
        message = f"Invalid value for '{param}': {message}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return bad_request(message, param=param)


HTTP_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(SegpruneError)
    async def _engine_error(_: Request, exc: SegpruneError) -> JSONResponse:
        return error_response(from_engine(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"Invalid URL ({request.method} {request.url.path})."
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
        else:
            message = str(exc.detail)
        error_type = "server_error" if exc.status_code >= 500 else "invalid_request_error"
        code = HTTP_STATUS_CODES.get(exc.status_code)
        body = error_body(message, error_type, None, code)
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))
