"""hCaptcha verification: one form POST to siteverify over a bounded aiohttp pool.

Any failure (a status other than 2xx, `success` anything but JSON `true`, a
timeout, a network error, an answer that is not JSON or is too large) is a
failed captcha: `verify` answers False and never raises. aiohttp, not httpx:
against the hand-written client this replaced, httpx made /addJob cost 5 to 6 times
the CPU, aiohttp 1.3 to 1.4 times (docs/benchmarks.md).

Connection reuse, so that an answer always belongs to its own request:

- An answer is read whole, up to MAX_ANSWER_BYTES, or its connection is closed
  (aiohttp closes a connection whose answer was not read to its end).
- A kept-alive connection is reused only while idle for less than IDLE_S, and
  only if nothing arrived on it since its answer: aiohttp 3.14 would hand out a
  connection holding bytes that came while it sat idle, and the next verify would
  read them as its own answer (aio-libs/aiohttp#13656). `_FreshConnector` closes it.
- One retry when a connection dies before a complete answer head arrives
  (aiohttp's ServerDisconnectedError or a reset). The usual cause is a kept-alive
  connection the server closed as our request went out (its idle timeout racing
  our reuse): the request never reached it, and a retry is exactly right. If the
  server did read it, the retry is still safe: a token is single-use, so a second
  verification of a spent token answers `success: false`, the `captcha failed`
  the first attempt was headed for anyway; a retry can never make a bad token
  pass, nor a token pass twice (only the retry's answer counts). No retry after
  a timeout, a refused connection, or an answer cut short in its body.
- SDQ_HCAPTCHA_TIMEOUT_S bounds the whole call: waiting for a pooled connection,
  connecting, both attempts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp.connector import Connection
from yarl import URL

if TYPE_CHECKING:
    from aiohttp.client_reqrep import ConnectionKey
    from aiohttp.tracing import Trace

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024  # hCaptcha answers with a few hundred bytes
POOL_SIZE = 100  # connections per process; more concurrent verifies wait inside the timeout
IDLE_S = 10.0
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class _AnswerTooLarge(ValueError):
    pass


class _FreshConnector(aiohttp.TCPConnector):
    """Reuses an idle connection only if nothing arrived on it since its last answer."""

    async def _get(self, key: ConnectionKey, traces: list[Trace]) -> Connection | None:
        while (connection := await super()._get(key, traces)) is not None:
            protocol = connection.protocol
            if protocol is not None and not protocol.should_close:
                return connection
            connection.close()  # bytes came while it was idle: never read them as an answer
        return None


def hcaptcha_session() -> aiohttp.ClientSession:
    """The pool for siteverify calls; the app's lifespan owns (and closes) it."""
    return aiohttp.ClientSession(
        connector=_FreshConnector(limit=POOL_SIZE, keepalive_timeout=IDLE_S),
        timeout=aiohttp.ClientTimeout(total=None),  # verify() bounds each whole call
        cookie_jar=aiohttp.DummyCookieJar(),  # nothing for a server to grow
        skip_auto_headers=("Accept-Encoding",),  # nothing to decompress: a size is a size
        auto_decompress=False,
    )


class CaptchaVerifier:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        secret: str,
        sitekey: str | None,
        timeout_s: float,
    ) -> None:
        self._url = URL(url)
        if self._url.scheme not in ("http", "https") or not self._url.host:
            raise ValueError(f"the hCaptcha verify URL must be http(s)://host/...: {url!r}")
        self._session = session
        self._secret = secret
        self._sitekey = sitekey
        self._timeout_s = timeout_s

    async def verify(self, response: str, remote_ip: str | None) -> bool:
        form = {"secret": self._secret, "response": response}
        if self._sitekey:
            form["sitekey"] = self._sitekey
        if remote_ip:
            form["remoteip"] = remote_ip
        try:
            async with asyncio.timeout(self._timeout_s):
                status, answer = await self._post(urlencode(form).encode())
            if not 200 <= status < 300:  # an error page saying "success" is still one
                raise ValueError(f"status {status}")
            return orjson.loads(answer).get("success") is True
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, AttributeError) as exc:
            log.warning("captcha verification failed: %s", type(exc).__name__)
            return False

    async def _post(self, body: bytes) -> tuple[int, bytes]:
        try:
            return await self._exchange(body)
        except aiohttp.ClientConnectorError:
            raise  # never connected: nothing was sent, and trying again would fail alike
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            return await self._exchange(body)  # died before answering: see the docstring

    async def _exchange(self, body: bytes) -> tuple[int, bytes]:
        async with self._session.post(self._url, data=body, headers=_FORM) as reply:
            declared = reply.content_length
            if declared is not None and declared > MAX_ANSWER_BYTES:
                raise _AnswerTooLarge
            answer = b""
            while len(answer) <= MAX_ANSWER_BYTES:
                chunk = await reply.content.read(MAX_ANSWER_BYTES + 1 - len(answer))
                if not chunk:
                    return reply.status, answer
                answer += chunk
            raise _AnswerTooLarge  # leaving unread: aiohttp closes the connection


class NoCaptcha:
    """Accepts every non-empty captcha. Only with SDQ_INSECURE_SKIP_CAPTCHA=true."""

    async def verify(self, response: str, remote_ip: str | None) -> bool:
        return True
