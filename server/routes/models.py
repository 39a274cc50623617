"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

from fastapi import APIRouter

from server.errors import model_not_found
from server.protocol import ModelCard, ModelList
from server.routes import PoolDep, error_responses

router = APIRouter(tags=["models"])


def _card(engine) -> ModelCard:
    return ModelCard(id=engine.name, created=engine.created, family=engine.family, tasks=sorted(engine.tasks))


@router.get("/v1/models", response_model=ModelList, responses=error_responses(401))
async def list_models(pool: PoolDep) -> ModelList:
    """The loaded models (empty while they are still loading)."""
    return ModelList(data=[_card(worker.engine) for worker in pool.workers.values()])


@router.get("/v1/models/{model_id:path}", response_model=ModelCard, responses=error_responses(401, 404))
async def retrieve_model(model_id: str, pool: PoolDep) -> ModelCard:
    worker = pool.workers.get(model_id)
    if worker is None:
        raise model_not_found(model_id)
    return _card(worker.engine)
