"""The one owner of the legacy byte shapes: JSON as Go's encoder wrote it, plus '\\n'.

Go's encoding/json escapes '<', '>' and '&' (and U+2028/U+2029) in strings;
the original's bodies did, so ours do. Objects are compact with keys in the
contract's order, and floats are written as Go's shortest 'f' format.
"""

from __future__ import annotations

import json
import re

from broker.job import JobSpec, StatusView

_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


# Printable ASCII except '"', '\\', '<', '>' and '&': what both encoders copy unchanged.
_PLAIN = re.compile(r"[ !#-%'-;=?-\[\]-~]*")


def go_string(value: str) -> str:
    if _PLAIN.fullmatch(value):  # tokens, states, most prompts: no encoder needed
        return '"' + value + '"'
    return json.dumps(value, ensure_ascii=False).translate(_GO_ESCAPES)


def go_seconds(milliseconds: int) -> str:
    """A duration in ms as Go prints float64(ms)/1000: 61.618, 2, 0.001."""
    if milliseconds % 1000 == 0:
        return str(milliseconds // 1000)
    return repr(milliseconds / 1000)


def string_body(value: str) -> bytes:
    return (go_string(value) + "\n").encode()


def error_body(messages: list[str]) -> bytes:
    return string_body(", ".join(messages))


def status_body(status: StatusView) -> bytes:
    return (
        f'{{"Token":{go_string(status.token)},"State":{go_string(status.state.value)},'
        f'"Age":{go_seconds(status.age_ms)},"QueueLength":{status.queue_length}}}\n'
    ).encode()


def next_job_body(job: JobSpec) -> bytes:
    return (
        f'{{"Token":{go_string(job.token)},"Number":{job.number},"Width":{job.width},'
        f'"Height":{job.height},"Prompt":{go_string(job.prompt)}}}\n'
    ).encode()
