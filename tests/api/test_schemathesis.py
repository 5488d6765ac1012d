"""Fuzz every operation of the app's OpenAPI schema with schemathesis, the legacy paths
included (api/openapi_legacy.py puts them in the schema): valid and invalid inputs,
through the ASGI app (no network), against a real Redis engine. No answer may be a 500
or show a stack trace. Bounded: a few examples per operation, no deadline."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.schemas import OpenApiSchema

from api.app import create_app
from api.legacy.openapi import LEGACY_PATHS
from api.settings import ApiSettings
from sdq.doubles.fake_hcaptcha import FakeHCaptcha
from sdq.embedded_redis import EmbeddedRedis
from tests.conftest import BACKEND_SECRET, HCAPTCHA_SECRET

EXAMPLES = 10  # per operation and mode: the whole run stays within seconds
STACK_TRACE_MARKERS = (b"Traceback (most recent call last)", b'File "/', b"Error:")


@pytest.fixture(scope="module")
def api_schema(redis_engine: EmbeddedRedis, fake_hcaptcha: FakeHCaptcha) -> Iterator[OpenApiSchema]:
    settings = ApiSettings(
        redis_url=SecretStr(redis_engine.url),
        key_prefix=f"fuzz-{uuid.uuid4().hex[:12]}",
        backend_secrets=[BACKEND_SECRET],
        hcaptcha_secret=HCAPTCHA_SECRET,
        hcaptcha_verify_url=fake_hcaptcha.url,
        hcaptcha_timeout_s=0.5,
        access_log=False,
        addjob_rate="1000/minute",
        max_open_jobs_per_client=50,
    )
    app = create_app(settings)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    shutdown_lifespans()  # the app's lifespan runs in schemathesis's own event loop


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode) -> None:
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call()
        where = f"{case.method} {case.formatted_path} {case.query!r}"
        assert response.status_code < 500, f"{where}: {response.status_code} {response.content!r}"
        for marker in STACK_TRACE_MARKERS:
            assert marker not in response.content, f"{where}: stack trace {response.content!r}"

    run()


def test_schemathesis_covers_the_legacy_paths(api_schema: OpenApiSchema) -> None:
    paths = {result.ok().path for result in api_schema.get_all_operations()}
    assert set(LEGACY_PATHS) <= paths
    assert "/metrics" in paths


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_no_operation_answers_500_or_a_stack_trace(
    api_schema: OpenApiSchema, mode: GenerationMode
) -> None:
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        try:
            fuzz(operation, mode)
        except AssertionError as failure:
            failures.append(str(failure).splitlines()[0])
        except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
            assert mode is GenerationMode.NEGATIVE
    assert failures == []
