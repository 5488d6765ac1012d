"""The Ingress keeps deploy/nginx.conf's retry rules and limits."""

from __future__ import annotations

import re

import pytest
import uvicorn
import yaml

from sdq.nginx_conf import NOT_RETRIED, NOT_RETRIED_PREFIXES, compose_site
from tests.deploy.k8s.support import (
    ANNOTATION,
    K8S,
    NEXT_UPSTREAM,
    Obj,
    one,
)


def nginx_directive(name: str) -> str:
    match = re.search(rf"^\s*{name} ([^;]+);", compose_site(), re.MULTILINE)
    assert match, name
    return match.group(1)


def seconds(value: str) -> str:
    return value.removesuffix("s")


def ingress(objects: list[Obj], name: str) -> tuple[dict[str, str], list[Obj]]:
    obj = one(objects, "Ingress", name)
    annotations = {k.removeprefix(ANNOTATION): v for k, v in obj["metadata"]["annotations"].items()}
    assert obj["spec"]["ingressClassName"] == "nginx"
    (rule,) = obj["spec"]["rules"]
    paths: list[Obj] = rule["http"]["paths"]
    return annotations, paths


def test_ingress_never_retries_what_nginx_conf_never_retries(single: list[Obj]) -> None:
    annotations, paths = ingress(single, "sdq-not-retried")
    exact = {p["path"] for p in paths if p["pathType"] == "Exact"}
    prefix = {p["path"] for p in paths if p["pathType"] == "Prefix"}
    assert (exact, prefix) == (set(NOT_RETRIED), set(NOT_RETRIED_PREFIXES))
    assert annotations["proxy-next-upstream"] == "off"
    assert "retry-non-idempotent" not in annotations


def test_ingress_retries_reads_as_nginx_conf_does(single: list[Obj]) -> None:
    annotations, paths = ingress(single, "sdq-reads")
    assert [(p["path"], p["pathType"]) for p in paths] == [("/", "Prefix")]
    assert annotations["proxy-next-upstream"] == nginx_directive("proxy_next_upstream")
    assert annotations["proxy-next-upstream-tries"] == nginx_directive("proxy_next_upstream_tries")
    timeout = seconds(nginx_directive("proxy_next_upstream_timeout"))
    assert annotations["proxy-next-upstream-timeout"] == timeout


@pytest.mark.parametrize("name", ["sdq-reads", "sdq-not-retried"])
def test_ingress_limits_are_nginx_conf_s(single: list[Obj], name: str) -> None:
    annotations, paths = ingress(single, name)
    assert NEXT_UPSTREAM.match(annotations["proxy-next-upstream"])
    assert all(isinstance(value, str) for value in annotations.values())
    assert annotations["proxy-body-size"] == nginx_directive("client_max_body_size")
    assert annotations["client-body-buffer-size"] == nginx_directive("client_body_buffer_size")
    assert annotations["proxy-connect-timeout"] == seconds(nginx_directive("proxy_connect_timeout"))
    assert annotations["proxy-read-timeout"] == seconds(nginx_directive("proxy_read_timeout"))
    assert annotations["proxy-max-temp-file-size"] == nginx_directive("proxy_max_temp_file_size")
    assert int(annotations["limit-connections"]) > 0
    port = one(single, "Service", "sdq-api")["spec"]["ports"][0]["name"]
    for path in paths:
        assert path["backend"]["service"] == {"name": "sdq-api", "port": {"name": port}}


def test_ingress_controller_values_carry_nginx_conf_s_server_settings() -> None:
    config = yaml.safe_load((K8S / "ingress-nginx" / "values.yaml").read_text(encoding="utf-8"))
    controller = config["controller"]
    assert controller["service"]["externalTrafficPolicy"] == "Local"
    settings = controller["config"]
    assert all(isinstance(value, str) for value in settings.values()), "ConfigMap values"
    assert settings["use-forwarded-headers"] == settings["compute-full-forwarded-for"] == "false"
    assert settings["large-client-header-buffers"] == nginx_directive("large_client_header_buffers")
    keepalive = uvicorn.Config("api.app:create_app").timeout_keep_alive
    assert int(settings["upstream-keepalive-timeout"]) < keepalive
    log_format = settings["log-format-upstream"]
    assert not re.search(r"\$(request|args|request_uri|query_string)\b", log_format)
    assert settings["error-log-level"] == "crit", "error lines quote the query string"


# --- network policies and client addresses ------------------------------------------
