"""OpenAPI descriptions of the legacy paths, which the bare ASGI router serves.

FastAPI only documents its own routes; these entries put the legacy contract
into the same schema so clients and fuzzers see every path.
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": "string"}


def _param(name: str, description: str, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": _STRING,
        "description": description,
    }


def _responses(ok: dict[str, Any], not_found: str | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "success", "content": {"application/json": {"schema": ok}}},
        "400": {
            "description": "bad parameters: the failed checks' messages joined by ', '",
            "content": {"application/json": {"schema": _STRING}},
        },
        "500": {
            "description": "storage unavailable",
            "content": {"application/json": {"schema": _STRING}},
        },
    }
    if not_found:
        responses["404"] = {
            "description": not_found,
            "content": {"application/json": {"schema": _STRING}},
        }
    return responses


def _object(*fields: tuple[str, str]) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": kind} for name, kind in fields}}


_SECRET = _param("secret", "backend secret (or send Authorization: Bearer)", required=False)

LEGACY_PATHS: dict[str, Any] = {
    "/addJob": {
        "get": {
            "tags": ["legacy frontend"],
            "summary": "Queue a new job; returns its token",
            "parameters": [
                _param("prompt", "1..500 bytes, printable ASCII after DE/IT transliteration"),
                _param("number", "images, 1..16"),
                _param("resolution", "1024x576, 768x576, 576x768 or 576x576"),
                _param("captcha", "hCaptcha response"),
            ],
            "responses": _responses(_STRING),
        }
    },
    "/getJobStatus": {
        "get": {
            "tags": ["legacy frontend"],
            "summary": "State, age and queue position of a job",
            "parameters": [_param("token", "the job's token")],
            "responses": _responses(
                _object(
                    ("Token", "string"),
                    ("State", "string"),
                    ("Age", "number"),
                    ("QueueLength", "integer"),
                ),
                "token not found",
            ),
        }
    },
    "/getNextJob": {
        "get": {
            "tags": ["legacy backend"],
            "summary": "The oldest new job (state unchanged)",
            "parameters": [_SECRET],
            "responses": _responses(
                _object(
                    ("Token", "string"),
                    ("Number", "integer"),
                    ("Width", "integer"),
                    ("Height", "integer"),
                    ("Prompt", "string"),
                ),
                "no more jobs",
            ),
        }
    },
    "/setJobStatus": {
        "get": {
            "tags": ["legacy backend"],
            "summary": "new -> pending, pending -> complete",
            "parameters": [
                _param("token", "the job's token"),
                _param("state", "pending or complete"),
                _SECRET,
                _param(
                    "fence",
                    "extension: the claim's fence (x-sdq-fence), refuses a stale worker",
                    required=False,
                ),
            ],
            "responses": _responses(_STRING, "token not found"),
        }
    },
}
