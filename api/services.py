"""What a request handler needs, built once per process by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Request

from api.abuse import AbuseGuard
from api.auth import BackendSecrets
from api.client_address import ClientAddresses
from api.server_watch import ServerWatch
from api.settings import ApiSettings
from broker.queue import Queue


class Captcha(Protocol):
    async def verify(self, response: str, remote_ip: str | None) -> bool: ...


@dataclass(frozen=True, slots=True)
class Services:
    settings: ApiSettings
    queue: Queue
    captcha: Captcha
    secrets: BackendSecrets
    clients: ClientAddresses
    abuse: AbuseGuard
    server: ServerWatch  # the Redis server's epoch and configuration


def get_services(request: Request) -> Services:
    """The app's Services (its lifespan built them), as a route dependency."""
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]
