"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.services import ServicesDep
from broker.errors import StorageUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
@router.head("/healthz", include_in_schema=False)  # probes that only look at the status
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis answers: this replica can serve", response_model=None)
@router.head("/readyz", include_in_schema=False, response_model=None)
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 while Redis answers. `warnings` names what in Redis's configuration can lose
    jobs (no persistence, an eviction policy): the replica serves, but should not."""
    try:
        await services.queue.ping()
    except StorageUnavailable:
        return JSONResponse({"status": "redis unreachable"}, status_code=503)
    if services.server.problems:
        return JSONResponse({"status": "ready", "warnings": services.server.problems})
    return JSONResponse({"status": "ready"})
