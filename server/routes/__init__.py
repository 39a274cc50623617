"""One module per endpoint group; each only translates HTTP <-> engine calls."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from server.pool import ModelPool
from server.protocol import ErrorResponse
from server.settings import Settings


def get_pool(request: Request) -> ModelPool:
    return request.app.state.pool


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


PoolDep = Annotated[ModelPool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error statuses a route can return (all share OpenAI's envelope)."""
    descriptions = {
        400: "Invalid request",
        401: "Missing or wrong API key",
        404: "Unknown model",
        413: "Request body too large",
        429: "The model's queue is full (see Retry-After)",
        500: "Server error",
        503: "Models still loading",
        504: "Request timed out",
    }
    return {code: {"model": ErrorResponse, "description": descriptions[code]} for code in codes}


INFERENCE_ERRORS = error_responses(400, 401, 404, 413, 429, 500, 503, 504)
