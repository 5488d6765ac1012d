"""The application factory: `uvicorn --factory api.app:create_app`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from redis.asyncio import Redis, RedisCluster

from api.abuse import AbuseGuard, AbuseLimits
from api.access_log import AccessLog
from api.auth import BackendSecrets
from api.captcha import CaptchaVerifier, NoCaptcha, hcaptcha_session
from api.client_address import ClientAddresses
from api.demo import install as install_demo
from api.health import router as health_router
from api.images import images_router
from api.legacy.backend import router as backend_router
from api.legacy.openapi import LEGACY_PATHS
from api.legacy.router import LegacyFirstApp
from api.metrics import HttpMetrics, HttpMetricsMiddleware, metrics_router
from api.rate_limits import rate_storage
from api.server_watch import ServerWatch
from api.services import Captcha, Services
from api.settings import ApiSettings
from api.sweeper import sweep_forever
from api.v2 import install as install_v2
from api.v2.errors import install_handlers
from broker.connection import create_redis
from broker.queue import Queue

log = logging.getLogger(__name__)


def create_app(
    settings: ApiSettings | None = None, redis: Redis | RedisCluster | None = None
) -> FastAPI:
    """Builds an isolated app. With `redis` given (tests), the caller owns that client."""
    settings = settings or ApiSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis if redis is not None else create_redis(settings)
        async with hcaptcha_session() as http:
            queue = Queue(client, settings)
            services = Services(
                settings=settings,
                queue=queue,
                captcha=_captcha(settings, http),
                secrets=BackendSecrets(settings.all_backend_secrets()),
                clients=ClientAddresses(settings.trusted_proxies, settings.ipv6_client_prefix),
                abuse=AbuseGuard(
                    queue,
                    AbuseLimits.from_settings(settings),
                    rate_storage(queue, settings.redis_url.get_secret_value()),
                ),
                server=ServerWatch(queue),
            )
            app.state.services = services
            await services.server.check_quietly()
            sweeper = asyncio.create_task(
                sweep_forever(
                    services.queue,
                    settings.sweep_interval_s,
                    services.server,
                    settings.images_dir,
                )
            )
            try:
                yield
            finally:
                sweeper.cancel()
                await _bounded(sweeper)
                await _bounded(services.abuse.aclose())
                if redis is None:
                    await _bounded(client.aclose())

    http_metrics = HttpMetrics() if settings.metrics else None
    app = LegacyFirstApp(
        access_log=settings.access_log,
        http_metrics=http_metrics,
        title="Stable Diffusion job queue",
        version="1.0",
        summary="The legacy job-queue contract, served from Redis.",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,  # 413 past it, on every route that reads one
    )
    app.include_router(health_router)
    app.include_router(backend_router)
    if settings.images_dir is not None:
        app.include_router(images_router(settings.images_dir))
    install_v2(app, settings)
    install_demo(app)  # the demo page at /
    install_handlers(app)  # JSON errors everywhere, the v2 shape under /v2/
    if http_metrics is not None:
        app.include_router(metrics_router(http_metrics))
        app.add_middleware(HttpMetricsMiddleware, metrics=http_metrics)
    if settings.access_log:
        app.add_middleware(AccessLog)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _bounded(step: Awaitable[object], seconds: float = 5.0) -> None:
    """A shutdown step that cannot hold the process: after `seconds` it is abandoned
    (a stuck connection must not keep a replica from stopping)."""
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        async with asyncio.timeout(seconds):
            await step


def _captcha(settings: ApiSettings, http: aiohttp.ClientSession) -> Captcha:
    if settings.hcaptcha_secret is None:
        log.warning("SDQ_INSECURE_SKIP_CAPTCHA: every non-empty captcha is accepted")
        return NoCaptcha()
    return CaptchaVerifier(
        http,
        settings.hcaptcha_verify_url,
        settings.hcaptcha_secret.get_secret_value(),
        settings.hcaptcha_sitekey,
        settings.hcaptcha_timeout_s,
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        schema["paths"] = {**LEGACY_PATHS, **schema.get("paths", {})}
        app.openapi_schema = schema
    return app.openapi_schema
