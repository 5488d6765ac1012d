"""hCaptcha verification over one pooled HTTP client.

Any failure (success false, timeout, network error, non-JSON) is a failed
captcha: the caller answers `captcha failed` and never raises.
"""

from __future__ import annotations

import logging

import orjson

from api.siteverify import SiteverifyClient, SiteverifyError

log = logging.getLogger(__name__)


class CaptchaVerifier:
    def __init__(
        self,
        client: SiteverifyClient,
        secret: str,
        sitekey: str | None,
    ) -> None:
        self._client = client
        self._secret = secret
        self._sitekey = sitekey

    async def verify(self, response: str, remote_ip: str | None) -> bool:
        form = {"secret": self._secret, "response": response}
        if self._sitekey:
            form["sitekey"] = self._sitekey
        if remote_ip:
            form["remoteip"] = remote_ip
        try:
            answer = await self._client.post_form(form)
            if not 200 <= answer.status < 300:  # an error page saying "success" is still one
                raise SiteverifyError(f"status {answer.status}")
            return orjson.loads(answer.body).get("success") is True
        except (SiteverifyError, OSError, TimeoutError, ValueError, AttributeError) as exc:
            log.warning("captcha verification failed: %s", type(exc).__name__)
            return False


class NoCaptcha:
    """Accepts every non-empty captcha. Only with SDQ_INSECURE_SKIP_CAPTCHA=true."""

    async def verify(self, response: str, remote_ip: str | None) -> bool:
        return True
