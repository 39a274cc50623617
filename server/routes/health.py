"""GET /health (the process is up) and GET /ready (the models are loaded and serving)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from server.errors import APIError, error_response, not_ready
from server.routes import PoolDep, error_responses

router = APIRouter(tags=["health"])


@router.get("/health", responses=error_responses(503))
async def health(pool: PoolDep) -> JSONResponse:
    if pool.load_error is not None:  # the process is up but will never serve: let a supervisor restart it
        return error_response(APIError(503, f"Loading the models failed: {pool.load_error}", error_type="server_error"))
    return JSONResponse({"status": "ok"})


@router.get("/ready", responses=error_responses(503))
async def ready(pool: PoolDep) -> JSONResponse:
    if not pool.ready:
        return error_response(not_ready())
    return JSONResponse({"status": "ready", "models": list(pool.workers)})
