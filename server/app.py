"""The FastAPI app factory: `create_app(settings)` for uvicorn, `create_app(settings, engines)` for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from segprune_core import __version__
from server.errors import install_error_handlers
from server.metrics import Metrics
from server.middleware import APIKeyMiddleware, BodyLimitMiddleware, UnexpectedErrorMiddleware
from server.pool import ModelPool
from server.request_metrics import MetricsMiddleware
from server.routes import audio, chat, health, metrics, models
from server.settings import Settings


def create_app(settings: Settings, engines: Mapping[str, object] | None = None) -> FastAPI:
    """Serve `engines` if given (already loaded), else load `settings.models` at start-up in a thread,
    so /health answers at once and /ready turns 200 when loading is done."""
    pool = ModelPool(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if engines is not None:
            pool.attach(engines)
        else:
            pool.start_loading()
        yield
        await pool.shutdown()

    app = FastAPI(
        title="segprune",
        version=__version__,
        summary="OpenAI-compatible server for audio-language models with Segmentwise Top-K audio-token pruning",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.metrics = Metrics(settings, pool)
    install_error_handlers(app)
    for module in (chat, audio, models, health, metrics):
        app.include_router(module.router)
    # Added last runs first: keys are checked before a byte of the body is read.
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(
        APIKeyMiddleware, keys=settings.all_api_keys(), protect_health_and_metrics=settings.protect_health_and_metrics
    )
    # Outermost: every inference request is counted, those refused for their key or size too.
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
