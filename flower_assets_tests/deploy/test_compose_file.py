"""What deploy/compose.yaml, deploy/Dockerfile and .dockerignore promise, read without Docker.

(.ci/run also has Debian's docker-compose check the file: `docker-compose config -q`.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from flower_assets_tests.deploy.compose import (
    COMPOSE_FILE,
    DEPLOY,
    REPO,
    ComposeError,
    environment,
    load,
    read_env_file,
)

EXAMPLE = read_env_file(DEPLOY / ".env.example")
FILLED = {
    **EXAMPLE,
    "POSTGRES_PASSWORD": "p0",
    "DAGSTER_DB_PASSWORD": "p1",
    "FLOWER_DB_PASSWORD": "p2",
}
RAW = COMPOSE_FILE.read_text()


def test_every_variable_compose_reads_is_in_the_example_and_the_secrets_are_required():
    named = set(re.findall(r"\$\{([A-Za-z_]\w*)", RAW))
    assert named <= set(EXAMPLE), named - set(EXAMPLE)
    required = set(re.findall(r"\$\{([A-Za-z_]\w*):\?", RAW))
    assert required == {"POSTGRES_PASSWORD", "DAGSTER_DB_PASSWORD", "FLOWER_DB_PASSWORD"}
    with pytest.raises(ComposeError, match="DAGSTER_DB_PASSWORD"):
        load({**FILLED, "DAGSTER_DB_PASSWORD": ""})


def test_secrets_come_only_from_the_env_file_which_git_ignores():
    services = load(FILLED)["services"]
    for service in services.values():
        for key, value in environment(service).items():
            if re.search(r"PASSWORD|KEY|WEBHOOK", key):
                assert value in ("", *FILLED.values()), key
    # No literal secret in the file: each is an interpolation.
    for line in RAW.splitlines():
        if re.match(r"\s*(\w*(PASSWORD|_KEY|WEBHOOK_URL)\w*):", line):
            assert "${" in line, line
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/.env"], cwd=REPO, capture_output=True
    )
    assert ignored.returncode == 0, "deploy/.env must be ignored by git"
    tracked = subprocess.run(
        ["git", "ls-files", "deploy/.env"], cwd=REPO, capture_output=True, text=True
    )
    assert tracked.stdout == ""


def test_every_setting_reaches_the_code_server_and_only_it():
    # Every FLOWER_ variable of the settings page, generated from their one declaration (and
    # kept current by test_docs.py).
    page = (REPO / "docs" / "settings.md").read_text()
    declared = set(re.findall(r"^\| `(FLOWER_[A-Z_]+)`", page, re.MULTILINE))
    assert "FLOWER_API_KEY" in declared
    services = load(FILLED)["services"]
    for name in ("code-server", "migrate"):
        assert declared <= set(environment(services[name])), declared - set(
            environment(services[name])
        )
    for name in ("webserver", "daemon"):
        env = environment(services[name])
        assert not [k for k in env if k.startswith("FLOWER_")]
        assert {"DAGSTER_HOME", "DAGSTER_PG_URL"} <= set(env)
    # Two databases with two owners: instance storage and warehouse.
    dagster_url = environment(services["code-server"])["DAGSTER_PG_URL"]
    warehouse_url = environment(services["code-server"])["FLOWER_DATABASE_URL"]
    password, warehouse_password = FILLED["DAGSTER_DB_PASSWORD"], FILLED["FLOWER_DB_PASSWORD"]
    assert dagster_url == f"postgresql+psycopg2://dagster:{password}@postgres:5432/dagster"
    assert warehouse_url == f"postgresql://flower:{warehouse_password}@postgres:5432/flower"


def test_the_ui_is_published_on_loopback_only_and_every_service_is_checked():
    services = load(FILLED)["services"]
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    assert [name for name, s in services.items() if s.get("ports")] == ["webserver"]
    for name, service in services.items():
        if name != "migrate":
            assert service["healthcheck"]["test"], name
        assert service.get("restart") == ("no" if name == "migrate" else "unless-stopped")
    volumes = load(FILLED)["volumes"]
    assert set(volumes) == {"postgres_data", "dagster_home"}


def test_the_image_runs_as_a_user_from_the_lock_file_and_serves_the_code_by_default():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in re.sub(r"\\\n", " ", dockerfile).splitlines() if line.strip()]
    instructions = [line for line in instructions if not line.lstrip().startswith("#")]
    (user,) = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert user.split(":")[0] not in ("0", "root")
    syncs = [line for line in instructions if "uv sync" in line]
    assert len(syncs) == 2 and all("--locked" in s and "--no-dev" in s for s in syncs)
    assert all("--compile-bytecode" in s for s in syncs)
    # Nothing secret is an ARG or ENV of the image.
    names = " ".join(line for line in instructions if line.startswith(("ARG", "ENV")))
    assert not re.search(r"KEY|PASSWORD|SECRET|TOKEN|WEBHOOK|DATABASE_URL", names)
    # The image's default command is the compose file's code server.
    cmd = next(line for line in instructions if line.startswith("CMD "))
    services = load(FILLED)["services"]
    assert json.loads(cmd[len("CMD ") :]) == services["code-server"]["command"]
    # The build context holds only what the image needs: nothing local, nothing secret.
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = [p[1:] for p in patterns if p.startswith("!")]
    assert allowed == ["pyproject.toml", "uv.lock", "README.md", "flower_assets/"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_accepts_the_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in FILLED.items()))
    done = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
