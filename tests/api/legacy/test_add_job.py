"""/addJob through the real app, on fakeredis and on a real engine."""

from __future__ import annotations

import re

import httpx
import pytest
from redis.asyncio import Redis

from api.app import create_app
from api.legacy.rules import NON_PRINTABLE
from api.settings import ApiSettings
from broker.queue import Queue
from sdq.doubles.fake_hcaptcha import FakeHCaptcha
from sdq.supervisor import free_port
from tests.conftest import BACKEND_SECRET, HCAPTCHA_SECRET

VALID = {"prompt": "hello world", "number": "1", "resolution": "768x576", "captcha": "good-1"}


async def add_job(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("/addJob", params={**VALID, **params})


async def next_job(client: httpx.AsyncClient) -> dict[str, object]:
    reply = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})
    assert reply.status_code == 200, reply.content
    job = reply.json()
    assert isinstance(job, dict)
    return job


def assert_error(reply: httpx.Response, body: str) -> None:
    sent = reply.request.url.query[:120]
    assert (reply.status_code, reply.content) == (400, f'"{body}"\n'.encode()), sent


async def test_add_job_returns_a_fresh_lower_case_hex_token(client: httpx.AsyncClient) -> None:
    tokens = set()
    for _ in range(5):
        reply = await add_job(client)
        assert reply.status_code == 200
        assert re.fullmatch(rb'"[0-9a-f]{32}"\n', reply.content)
        tokens.add(reply.json())
    assert len(tokens) == 5


async def test_add_job_stores_the_job_as_new(client: httpx.AsyncClient) -> None:
    token = (await add_job(client, number="3", resolution="576x768")).json()
    assert await next_job(client) == {
        "Token": token,
        "Number": 3,
        "Width": 576,
        "Height": 768,
        "Prompt": "hello world",
    }
    status = (await client.get("/getJobStatus", params={"token": token})).json()
    assert status["State"] == "new"


async def test_add_job_stores_its_creation_time_from_the_redis_clock(
    client: httpx.AsyncClient, queue: Queue, redis: Redis
) -> None:
    seconds, micros = await redis.time()
    before = seconds * 1000 + micros // 1000
    token = (await add_job(client)).json()
    seconds, micros = await redis.time()
    after = seconds * 1000 + micros // 1000
    created = await redis.hget(queue.keys.job(token), "created_ms")
    assert isinstance(created, str)
    assert before <= int(created) <= after


async def test_add_job_matches_the_original_failure_example(client: httpx.AsyncClient) -> None:
    reply = await client.get("/addJob?prompt=hello%20world&number=1000&resolution=768x13")
    assert_error(reply, "number out of range, invalid resolution, missing captcha")
    assert reply.headers["content-length"] == "59"


async def test_add_job_every_parameter_missing(client: httpx.AsyncClient) -> None:
    reply = await client.get("/addJob")
    assert_error(reply, "missing prompt, missing number, missing resolution, missing captcha")


async def test_add_job_every_check_failing_at_once(client: httpx.AsyncClient) -> None:
    reply = await add_job(
        client, prompt="ä" * 250 + "\x01", number="0x10", resolution="abc", captcha="c" * 5001
    )
    assert_error(
        reply,
        f"prompt too long, {NON_PRINTABLE}, cannot parse number, invalid resolution, "
        "captcha too long",
    )


async def test_add_job_stores_the_transliterated_prompt(client: httpx.AsyncClient) -> None:
    for prompt, stored in [
        ("Schöne Grüße aus Südtirol", "Schoene Gruesse aus Suedtirol"),
        ("ÄÖÜ äöü ß", "AeOeUe aeoeue ss"),
        ("città è perché più però", "citta e perche piu pero"),
        ("ÀÈÌÒÙ ÁÉÍÓÚ àèìòù áéíóú", "AEIOU AEIOU aeiou aeiou"),
    ]:
        assert (await add_job(client, prompt=prompt)).status_code == 200
        assert (await next_job(client))["Prompt"] == stored


async def test_add_job_prompt_keeps_printable_ascii_punctuation(client: httpx.AsyncClient) -> None:
    prompt = "a, b & c + d # e ~ <f> \"g\" 'h' ={}[]|\\^`"
    assert (await add_job(client, prompt=prompt)).status_code == 200
    reply = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})
    assert reply.json()["Prompt"] == prompt
    assert b"\\u003cf\\u003e" in reply.content and b"\\u0026" in reply.content


async def test_add_job_prompt_of_500_bytes_is_accepted(client: httpx.AsyncClient) -> None:
    assert (await add_job(client, prompt="a" * 500)).status_code == 200
    assert (await add_job(client, prompt="ß" * 250)).status_code == 200


async def test_add_job_prompt_of_501_bytes_is_too_long(client: httpx.AsyncClient) -> None:
    assert_error(await add_job(client, prompt="a" * 501), "prompt too long")
    assert_error(await add_job(client, prompt="a" + "ü" * 250), "prompt too long")


async def test_add_job_prompt_length_is_measured_after_trimming(client: httpx.AsyncClient) -> None:
    assert (await add_job(client, prompt="  " + "a" * 500 + "\u3000")).status_code == 200


async def test_add_job_empty_or_blank_prompt_is_missing(client: httpx.AsyncClient) -> None:
    assert_error(await add_job(client, prompt=""), "missing prompt")
    assert_error(await add_job(client, prompt=" \t\u3000\n"), "missing prompt")


async def test_add_job_non_printable_prompt_said_once(client: httpx.AsyncClient) -> None:
    for prompt in ["a\x01\x02\x03b", "tab\tinside", "del\x7f", "\x1chello", "日本語", "ñandú"]:
        assert_error(await add_job(client, prompt=prompt), NON_PRINTABLE)


async def test_add_job_undecodable_prompt_bytes_are_non_printable(
    client: httpx.AsyncClient,
) -> None:
    query = "prompt=a%FFb&number=1&resolution=768x576&captcha=good-1"
    assert_error(await client.get(f"/addJob?{query}"), NON_PRINTABLE)


async def test_add_job_number_accepted(client: httpx.AsyncClient) -> None:
    for number, stored in [("1", 1), ("16", 16), ("+5", 5), (" 7 ", 7), ("\u30007\t", 7)]:
        assert (await add_job(client, number=number)).status_code == 200
        assert (await next_job(client))["Number"] == stored


async def test_add_job_number_out_of_range(client: httpx.AsyncClient) -> None:
    for number in ["0", "17", "-1", "9223372036854775807", "-9223372036854775808"]:
        assert_error(await add_job(client, number=number), "number out of range")


async def test_add_job_number_cannot_parse(client: httpx.AsyncClient) -> None:
    for number in [
        "1_6",
        "0x10",
        "1e1",
        "7 7",
        "99999999999999999999",
        "\uff10",
        "\uff11\uff16",
        "1.0",
        "+",
    ]:
        assert_error(await add_job(client, number=number), "cannot parse number")
    assert_error(await add_job(client, number="9" * 6000), "cannot parse number")


async def test_add_job_number_missing(client: httpx.AsyncClient) -> None:
    assert_error(await add_job(client, number=""), "missing number")
    assert_error(await add_job(client, number="  "), "missing number")


async def test_add_job_the_four_resolutions(client: httpx.AsyncClient) -> None:
    for resolution, size in [
        ("1024x576", (1024, 576)),
        ("768x576", (768, 576)),
        ("576x768", (576, 768)),
        ("576x576", (576, 576)),
    ]:
        assert (await add_job(client, resolution=resolution)).status_code == 200
        job = await next_job(client)
        assert (job["Width"], job["Height"]) == size


async def test_add_job_invalid_resolution(client: httpx.AsyncClient) -> None:
    for resolution in ["768x13", "576X576", "abc", "512x512", "768 x 576", "x"]:
        assert_error(await add_job(client, resolution=resolution), "invalid resolution")


async def test_add_job_missing_resolution(client: httpx.AsyncClient) -> None:
    assert_error(await add_job(client, resolution=""), "missing resolution")


async def test_add_job_captcha_of_5000_bytes_is_checked(
    client: httpx.AsyncClient, fake_hcaptcha: FakeHCaptcha
) -> None:
    captcha = "good-" + "c" * 4995
    assert (await add_job(client, captcha=captcha)).status_code == 200
    assert fake_hcaptcha.calls[-1]["response"] == captcha


async def test_add_job_captcha_of_5001_bytes_is_too_long(client: httpx.AsyncClient) -> None:
    assert_error(await add_job(client, captcha="good-" + "c" * 4996), "captcha too long")
    assert_error(await add_job(client, captcha="good-" + "é" * 2498), "captcha too long")


async def test_add_job_missing_captcha(client: httpx.AsyncClient) -> None:
    assert_error(await add_job(client, captcha=""), "missing captcha")


async def test_add_job_never_spends_a_captcha_on_a_failing_request(
    client: httpx.AsyncClient, fake_hcaptcha: FakeHCaptcha
) -> None:
    calls = len(fake_hcaptcha.calls)
    for params in [
        {"prompt": ""},
        {"prompt": "a\x01"},
        {"number": "17"},
        {"number": "x"},
        {"resolution": "1x1"},
        {"captcha": "good-" + "c" * 5000},
    ]:
        assert (await add_job(client, **params)).status_code == 400
    assert len(fake_hcaptcha.calls) == calls


async def test_add_job_sends_secret_response_sitekey_and_remote_ip(
    client: httpx.AsyncClient, fake_hcaptcha: FakeHCaptcha
) -> None:
    assert (await add_job(client, captcha="good-form")).status_code == 200
    assert fake_hcaptcha.calls[-1] == {
        "secret": HCAPTCHA_SECRET,
        "response": "good-form",
        "sitekey": "site-key",
        "remoteip": "203.0.113.7",
    }


@pytest.mark.parametrize("captcha", ["bad-token", "garbage", "http500", "slow"])
async def test_add_job_captcha_failures(
    client: httpx.AsyncClient, fake_hcaptcha: FakeHCaptcha, captcha: str, queue: Queue
) -> None:
    calls = len(fake_hcaptcha.calls)
    assert_error(await add_job(client, captcha=captcha), "captcha failed")
    assert len(fake_hcaptcha.calls) == calls + 1
    assert (await queue.counts())["new"] == 0


async def test_add_job_captcha_unreachable_verifier_fails(
    redis: Redis, settings: ApiSettings, fake_hcaptcha: FakeHCaptcha
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/siteverify"
    app = create_app(settings.model_copy(update={"hcaptcha_verify_url": closed}), redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdq.test") as client:
            assert_error(await add_job(client), "captcha failed")
