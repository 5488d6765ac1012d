"""compose.yaml, the Dockerfiles, deploy/nginx.conf and .env.example, checked
against the code without a Docker engine: whatever can drift from the code is
compared with it here."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.settings import ApiSettings
from gpu_worker.settings import WorkerSettings
from sdq.cli import _parser
from sdq.cluster import find_nginx
from sdq.nginx_conf import compose_site, main_config

ROOT = Path(__file__).resolve().parents[2]
OUR_IMAGES = {"Dockerfile.api", "Dockerfile.worker"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    return data


def service(name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services[name]


def settings_variables() -> set[str]:
    fields = set(ApiSettings.model_fields) | set(WorkerSettings.model_fields)
    return {f"SDQ_{name.upper()}" for name in fields}


def healthcheck_text(svc: dict[str, Any]) -> str:
    test = svc["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def dockerfile(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def test_compose_has_the_production_topology() -> None:
    services = compose()["services"]
    assert {"redis", "api", "lb", "worker", "minio"} <= set(services)
    assert service("api")["deploy"]["replicas"] == 3
    assert service("lb")["ports"] == ["9090:9090"]
    assert "ports" not in service("api"), "replicas are reached through the load balancer only"


def test_compose_redis_persists_to_an_append_only_file_on_a_volume() -> None:
    redis = service("redis")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "redis-cli ping" in healthcheck_text(redis)


def test_compose_redis_fsyncs_every_write_before_it_answers() -> None:
    """`always`: an acknowledged job survives a crash of Redis and a power cut
    (bench/durability.py; `everysec` lost acknowledged jobs to a SIGKILL)."""
    command = service("redis")["command"]
    assert command[command.index("--appendfsync") + 1] == "always"


def test_compose_every_long_running_service_has_a_healthcheck() -> None:
    assert "/readyz" in healthcheck_text(service("api"))
    assert "/readyz" in healthcheck_text(service("lb"))
    assert service("minio")["healthcheck"]
    assert service("api")["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service("lb")["depends_on"]["api"]["condition"] == "service_healthy"
    assert service("worker")["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_commands_of_our_images_are_real_entry_points() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for name, svc in compose()["services"].items():
        if svc.get("build", {}).get("dockerfile") not in OUR_IMAGES:
            continue
        program, *args = svc["command"]
        assert program in scripts["scripts"], f"{name}: {program} is not a console script"
        parsed = _parser().parse_args(args)  # exits (fails the test) on unknown arguments
        assert parsed.command in {"api", "worker"}, name


def test_compose_builds_each_image_from_a_dockerfile_that_exists() -> None:
    built = {svc["build"]["dockerfile"] for svc in compose()["services"].values() if "build" in svc}
    assert built == OUR_IMAGES
    assert all((ROOT / name).is_file() for name in built)


def test_compose_worker_reserves_an_nvidia_gpu_and_caches_models_on_a_volume() -> None:
    worker = service("worker")
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    cache = worker["environment"]["HF_HOME"]
    assert f"models:{cache}" in worker["volumes"]


def test_compose_api_trusts_forwarded_addresses_from_the_load_balancer_only() -> None:
    address = service("lb")["networks"]["default"]["ipv4_address"]
    assert service("api")["environment"]["SDQ_TRUSTED_PROXIES"] == f"{address}/32"
    subnet = compose()["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)


def test_compose_s3_store_runs_only_under_its_profile() -> None:
    for name in ("minio", "minio-init"):
        assert service(name)["profiles"] == ["minio"]
    assert all("profiles" not in service(n) for n in ("redis", "api", "lb", "worker"))


def test_compose_minio_is_published_on_loopback_only() -> None:
    ports = service("minio")["ports"]
    assert ports and all(port.startswith("127.0.0.1:") for port in ports), ports


def test_compose_minio_starts_only_after_its_password_check() -> None:
    check = service("minio-check")
    assert check["entrypoint"] == ["/bin/sh", "/deploy/minio-check.sh"]
    assert "./.env.example:/deploy/env.example:ro" in check["volumes"]
    needs = service("minio")["depends_on"]["minio-check"]
    assert needs["condition"] == "service_completed_successfully"
    assert service("minio-init")["entrypoint"] == ["/bin/sh", "/deploy/minio-init.sh"]
    for svc in ("minio-check", "minio-init"):
        for volume in service(svc)["volumes"]:
            assert (ROOT / volume.split(":")[0]).is_file(), f"{svc} mounts a missing {volume}"


def run_minio_script(
    name: str, tmp_path: Path, password: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """A deploy/minio-*.sh under the host's POSIX sh, with a fake `mc` that logs its
    arguments and keeps the policy it is given."""
    fake = tmp_path / "mc"
    fake.write_text(
        '#!/bin/sh\necho "$@" >> "$MC_LOG"\n'
        '[ "$1 $2" = "anonymous set-json" ] && cp "$3" "$MC_POLICY"\nexit 0\n',
        encoding="utf-8",
    )
    fake.chmod(0o755)
    variables = {
        "PATH": os.environ["PATH"],
        "MC": str(fake),
        "MC_LOG": str(tmp_path / "mc.log"),
        "MC_POLICY": str(tmp_path / "policy-given.json"),
        "POLICY_OUT": str(tmp_path / "policy.json"),
        "ENV_EXAMPLE": str(ROOT / ".env.example"),
        "MINIO_ROOT_USER": "sdq",
        "MINIO_ROOT_PASSWORD": password,
        "SDQ_S3_BUCKET": "sdq-images",
        **env,
    }
    return subprocess.run(
        ["sh", str(ROOT / "deploy" / name)], env=variables, capture_output=True, text=True,
        check=False, timeout=30,
    )  # fmt: skip


def test_minio_init_lets_anonymous_clients_get_objects_and_nothing_else(tmp_path: Path) -> None:
    result = run_minio_script("minio-init.sh", tmp_path, secrets.token_urlsafe(32))
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "mc.log").read_text(encoding="utf-8").splitlines()
    assert [call.split()[:2] for call in calls] == [
        ["alias", "set"],
        ["mb", "--ignore-existing"],
        ["anonymous", "set-json"],
    ]
    assert calls[-1].endswith(" local/sdq-images")
    policy = json.loads((tmp_path / "policy-given.json").read_text(encoding="utf-8"))
    assert policy["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"AWS": ["*"]},
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::sdq-images/*"],
        }
    ], "GetObject on the bucket's objects only: no s3:ListBucket, nothing on the bucket"
    assert "anonymous set download" not in (ROOT / "compose.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("bucket", ["", "Images", "a/b", "x;rm", "-lead", "trail."])
def test_minio_init_refuses_a_bucket_name_that_is_not_one(tmp_path: Path, bucket: str) -> None:
    result = run_minio_script(
        "minio-init.sh", tmp_path, secrets.token_urlsafe(32), SDQ_S3_BUCKET=bucket
    )
    assert result.returncode != 0
    assert not (tmp_path / "mc.log").exists(), "mc was never called"


def test_minio_check_accepts_a_long_random_password(tmp_path: Path) -> None:
    result = run_minio_script("minio-check.sh", tmp_path, secrets.token_urlsafe(32))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("", "is empty"),
        ("s3cret-but-short", "shorter than 24"),
        ("change-me-to-something-long-and-random", "placeholder"),
        ("https://api.hcaptcha.com/siteverify", "value from .env.example"),
    ],
)
def test_minio_check_refuses_a_guessable_root_password(
    tmp_path: Path, password: str, why: str
) -> None:
    result = run_minio_script("minio-check.sh", tmp_path, password)
    assert result.returncode == 1
    assert why in result.stderr
    refused = run_minio_script("minio-init.sh", tmp_path, password)
    assert refused.returncode == 1 and not (tmp_path / "mc.log").exists()


def test_minio_check_refuses_an_empty_root_user(tmp_path: Path) -> None:
    result = run_minio_script(
        "minio-check.sh", tmp_path, secrets.token_urlsafe(32), MINIO_ROOT_USER=""
    )
    assert result.returncode == 1 and "minioadmin" in result.stderr


def test_compose_named_volumes_are_declared_and_used() -> None:
    declared = set(compose()["volumes"])
    used = {
        volume.split(":")[0]
        for svc in compose()["services"].values()
        for volume in svc.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert used == declared


def test_compose_mounts_the_nginx_config_that_the_code_generates() -> None:
    mounts = service("lb")["volumes"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in mounts
    on_disk = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert on_disk == compose_site(), (
        "deploy/nginx.conf is stale: python -c 'from sdq.nginx_conf import compose_site; "
        'print(compose_site(), end="")\' > deploy/nginx.conf'
    )


def test_nginx_config_names_the_api_service_and_never_retries_add_job() -> None:
    site = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert re.search(r"^\s*server api:9090\b", site, re.MULTILINE)
    add_job = re.search(r"location = /addJob \{(.*?)\}", site, re.DOTALL)
    assert add_job is not None
    assert "proxy_next_upstream off;" in add_job.group(1)
    assert "$request " not in site and "$args" not in site, "no query string in the log format"


def test_nginx_accepts_the_compose_config(tmp_path: Path) -> None:
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx is not installed (scripts/test installs it: apt-get install nginx)")
    site = compose_site().replace("server api:9090", "server 127.0.0.1:9")
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    conf = tmp_path / "nginx.conf"
    conf.write_text(main_config(site, tmp_path), encoding="utf-8")
    args = [nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "e.log"), "-c", str(conf)]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_compose_sets_only_real_settings() -> None:
    known = settings_variables()
    for name, svc in compose()["services"].items():
        for variable in svc.get("environment", {}):
            if variable.startswith("SDQ_"):
                assert variable in known, f"{name}: {variable} is not a settings field"


def env_example(commented_only: bool = False) -> dict[str, str]:
    """Every variable of .env.example, set or shown commented out with its default
    (only the commented ones: the defaults shown, not production's values set)."""
    found = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"(#? ?)([A-Z][A-Z0-9_]*)=(.*)", line)
        if match and (match.group(1) or not commented_only):
            found[match.group(2)] = match.group(3)
    return found


SECRETS = re.compile(r"SECRET|PASSWORD")


def test_env_example_ships_every_secret_empty() -> None:
    """A forgotten secret fails closed: there is no value to forget to change."""
    shown = env_example()
    found = {name for name in shown if SECRETS.search(name)}
    required = {"SDQ_BACKEND_SECRETS", "SDQ_HCAPTCHA_SECRET", "MINIO_ROOT_PASSWORD"}
    assert required | {"AWS_SECRET_ACCESS_KEY", "SDQ_REDIS_SENTINEL_PASSWORD"} <= found
    assert {name: shown[name] for name in found if shown[name]} == {}
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    for name in required:
        assert f"{name}=" in lines, f"{name}= is to be filled in, uncommented"


def test_env_example_lists_only_real_settings() -> None:
    unknown = {name for name in env_example() if name.startswith("SDQ_")} - settings_variables()
    assert not unknown, f".env.example names settings that do not exist: {sorted(unknown)}"


def test_env_example_documents_every_setting() -> None:
    missing = settings_variables() - set(env_example())
    assert not missing, f"document these in .env.example: {sorted(missing)}"


def test_env_example_shows_the_real_defaults() -> None:
    defaults = {**WorkerSettings.model_fields, **ApiSettings.model_fields}
    for variable, shown in env_example(commented_only=True).items():
        field = defaults.get(variable.removeprefix("SDQ_").lower())
        if field is None or not shown or field.default is None:
            continue
        default = field.default
        value = default.get_secret_value() if hasattr(default, "get_secret_value") else default
        if isinstance(value, bool):
            value = str(value).lower()
        if isinstance(value, str | int | float):
            assert shown == str(value), f"{variable}: shows {shown}, default is {value}"


@pytest.mark.parametrize("name", sorted(OUR_IMAGES))
def test_dockerfile_is_slim_and_runs_as_a_non_root_user(name: str) -> None:
    text = dockerfile(name)
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert bases and all(base.endswith("-slim") for base in bases)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r'^CMD \["sdq", "(api|worker)"\]', text, re.MULTILINE)


def test_dockerfile_api_installs_no_torch() -> None:
    installs = re.findall(r"pip install (.*)", dockerfile("Dockerfile.api"))
    assert installs == ["."], "the API image installs the core dependencies only"
    core = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not any(dep.startswith(("torch", "diffusers")) for dep in core["dependencies"])


def test_dockerfile_worker_installs_diffusers() -> None:
    assert 'pip install ".[worker,diffusers]"' in dockerfile("Dockerfile.worker")


def test_api_app_imports_without_the_worker_only_packages() -> None:
    """What the API image lacks (torch, diffusers, Pillow, boto3) is never imported."""
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'diffusers', 'transformers', 'PIL', "
        "'boto3', 'botocore'}:\n"
        "            raise ImportError(f'{name} is not in the API image')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from api.settings import ApiSettings\n"
        "from api.app import create_app\n"
        "create_app(ApiSettings(backend_secrets='s' * 32, insecure_skip_captcha=True, "
        "images_dir='.'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def test_dockerignore_keeps_secrets_and_local_data_out_of_the_images() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".env", ".git", ".venv", "sdq-data", "sdq-cluster-data"} <= ignored


def test_compose_and_env_example_set_the_same_per_client_caps() -> None:
    """Production's caps are on: compose's API sets them (from .env when given), and
    .env.example, which .env starts as, sets the same values."""
    api = compose()["services"]["api"]["environment"]
    shown = env_example()
    for name in ("SDQ_MAX_OPEN_JOBS_PER_CLIENT", "SDQ_MAX_IMAGES_PER_CLIENT"):
        assert api[name] == f"${{{name}:-{shown[name]}}}"
        assert int(shown[name]) > 0
