"""The served models: loaded once (in a thread, so /health answers at once), one worker each."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from server.errors import model_not_found, not_ready
from server.settings import Settings
from server.worker import ModelWorker

log = logging.getLogger("segprune.server")


def load_engines(settings: Settings) -> dict:
    from segprune_core.engine import Engine  # torch and transformers load here, not at import time

    engines = {}
    for index, model in enumerate(settings.models):
        log.info("loading model %s", model)
        engine = Engine.load(
            model,
            served_name=settings.served_name(index),
            device=settings.device,
            dtype=settings.dtype,
            encoder_batch_size=settings.encoder_batch_size,
            max_audio_seconds=settings.max_audio_seconds,
        )
        if engine.name in engines:
            raise ValueError(f"two models are served as '{engine.name}'; set served_model_names")
        engines[engine.name] = engine
        log.info("model %s ready as '%s' (%s)", model, engine.name, engine.family)
    return engines


class ModelPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workers: dict[str, ModelWorker] = {}
        self.load_error: str | None = None
        self._loading: asyncio.Task | None = None

    @property
    def ready(self) -> bool:
        return bool(self.workers)

    def attach(self, engines: Mapping[str, object]) -> None:
        for name, engine in engines.items():
            self.workers[name] = ModelWorker(engine, queue_size=self.settings.queue_size)

    def start_loading(self) -> None:
        self._loading = asyncio.create_task(self._load())

    async def _load(self) -> None:
        try:
            self.attach(await asyncio.to_thread(load_engines, self.settings))
        except Exception as exc:
            log.exception("loading the models failed")
            self.load_error = f"{type(exc).__name__}: {exc}"

    def get(self, model: str) -> ModelWorker:
        """The worker serving `model`: 503 while loading, 404 if no such model."""
        if not self.ready:
            raise not_ready()
        worker = self.workers.get(model)
        if worker is None:
            raise model_not_found(model)
        return worker

    async def shutdown(self) -> None:
        """Let queued requests finish (uvicorn has already stopped taking new ones), then stop threads."""
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        timeout = self.settings.shutdown_timeout_seconds
        await asyncio.gather(*(asyncio.to_thread(w.stop, timeout) for w in self.workers.values()))
