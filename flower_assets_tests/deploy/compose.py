"""deploy/compose.yaml read as Docker Compose reads it, and its services run as local processes.

`load` interpolates the file with an env file (`${VAR}`, `${VAR:-default}`, `${VAR:?error}`,
`$$`) and resolves its YAML anchors. `LocalHost` stands in for the compose network and the
containers' filesystems on this machine: it rewrites only what the network and the image provide
(service hostnames and ports, the container paths under a temporary root, the image's PATH), so
that each service's own command, environment, mounts and health check are what runs.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
BIN = Path(sys.executable).parent

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)


class ComposeError(ValueError):
    """What `docker-compose config` would refuse: a required variable left unset."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as compose reads an env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg, value = match["op"], match["arg"] or "", env.get(name)
        unset = not value if op and op.startswith(":") else value is None
        if op and op.endswith("?") and unset:
            raise ComposeError(f"{name}: {arg}")
        if op and op.endswith("-") and unset:
            return arg
        return value or ""

    return _VARIABLE.sub(substitute, text)


def _interpolated(node: object, env: Mapping[str, str]) -> object:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: _interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolated(value, env) for value in node]
    return node


def load(env: Mapping[str, str], path: Path = COMPOSE_FILE) -> dict:
    """The compose file with its anchors resolved and `env` interpolated, x- fields dropped."""
    raw = yaml.safe_load(path.read_text())
    document = {key: value for key, value in raw.items() if not key.startswith("x-")}
    return _interpolated(document, env)


def as_list(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def environment(service: Mapping) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def listening_port(service: Mapping) -> int | None:
    """The port the service's command serves on (`-p N`), as the compose network reaches it."""
    args = as_list(service.get("command") or [])
    for flag, value in itertools.pairwise(args):
        if flag in ("-p", "--port"):
            return int(value)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalHost:
    """This machine as the compose network and the containers' filesystems.

    `root` stands for the containers' filesystem: a container path /x/y is root/x/y, and every
    service shares it, as they share the named volumes and bind mounts the file gives them.
    `database` is the machine's PostgreSQL (host, port), standing in for the postgres service.
    """

    compose: dict
    root: Path
    database: tuple[str, int]
    database_service: str = "postgres"
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, service in self.services.items():
            if listening_port(service) is not None:
                self.ports[name] = free_port()

    @property
    def services(self) -> dict[str, dict]:
        return self.compose["services"]

    # Rewriting what the compose network and the image provide

    def _address(self, host: str, port: int | None) -> tuple[str, int | None]:
        if host == self.database_service:
            return self.database
        if host in self.ports:
            return "127.0.0.1", self.ports[host]
        return host, port

    def rewrite(self, text: str, service: str | None = None) -> str:
        """A value with service addresses and container paths as this machine has them."""
        names = "|".join(re.escape(name) for name in self.services)

        def address(match: re.Match[str]) -> str:
            host, port = self._address(match["host"], int(match["port"]))
            return f"{match['before']}{host}:{port}"

        text = re.sub(rf"(?P<before>@|//)(?P<host>{names}):(?P<port>\d+)", address, text)
        if service in self.ports:
            # The service's own loopback (its health check): its port on this machine.
            own = listening_port(self.services[service])
            text = re.sub(
                rf"(127\.0\.0\.1|localhost):{own}\b", f"127.0.0.1:{self.ports[service]}", text
            )
        if text.startswith("/") and not text.startswith(str(self.root)):
            for prefix in self._container_prefixes():
                if text == prefix or text.startswith(prefix + "/"):
                    return str(self.root) + text
        return text

    def _container_prefixes(self) -> set[str]:
        prefixes = set()
        for service in self.services.values():
            if service.get("working_dir"):
                prefixes.add(service["working_dir"])
            for volume in service.get("volumes") or []:
                prefixes.add(str(volume).split(":")[1])
        return {p for p in prefixes if p.startswith("/opt/")}

    def args(self, service: str, command: Iterable[str]) -> list[str]:
        args = [self.rewrite(arg, service) for arg in command]
        own = listening_port(self.services[service])
        for i, (flag, value) in enumerate(itertools.pairwise(args)):
            if flag in ("-p", "--port") and own is not None and value == str(own):
                args[i + 1] = str(self.ports[service])
            if flag in ("-h", "--host") and value == "0.0.0.0":
                args[i + 1] = "127.0.0.1"  # the compose network's reach is this machine's loopback
        return args

    def env(self, service: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DAGSTER_"))}
        # The image's PATH puts its environment's executables first.
        base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
        base["PYTHONUNBUFFERED"] = "1"
        return {
            **base,
            **{k: self.rewrite(v, service) for k, v in environment(self.services[service]).items()},
        }

    def mount(self, service: str) -> Path:
        """The service's volumes and bind mounts under root; returns its working directory."""
        for volume in self.services[service].get("volumes") or []:
            source, target, *_ = str(volume).split(":")
            where = Path(self.rewrite(target))
            if source.startswith((".", "/")):
                where.parent.mkdir(parents=True, exist_ok=True)
                self._bind(DEPLOY / source if source.startswith(".") else Path(source), where)
            else:
                where.mkdir(parents=True, exist_ok=True)  # a named volume
        cwd = Path(self.rewrite(self.services[service].get("working_dir") or "/"))
        cwd.mkdir(parents=True, exist_ok=True)
        return cwd

    def _bind(self, source: Path, target: Path) -> None:
        source = source.resolve()
        if source.name.endswith(".yaml") and "grpc_server" in source.read_text():
            # A workspace file names the code server by its compose hostname and port.
            workspace = yaml.safe_load(source.read_text())
            for entry in workspace["load_from"]:
                server = entry.get("grpc_server")
                if server:
                    server["host"], server["port"] = self._address(server["host"], server["port"])
            target.write_text(yaml.safe_dump(workspace))
        else:
            shutil.copyfile(source, target)

    # Processes

    def start(self, service: str, log_dir: Path) -> subprocess.Popen:
        spec = self.services[service]
        cwd = self.mount(service)
        log = (log_dir / f"{service}.log").open("a")
        process = subprocess.Popen(
            self.args(service, as_list(spec["command"])),
            cwd=cwd,
            env=self.env(service),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its children
        )
        self.processes[service] = process
        return process

    def run_to_completion(self, service: str, log_dir: Path, timeout_s: float = 180) -> None:
        process = self.start(service, log_dir)
        code = process.wait(timeout=timeout_s)
        assert code == 0, f"{service} exited {code}: {self.log(service, log_dir)}"

    def healthy(self, service: str) -> bool:
        test = as_list(self.services[service]["healthcheck"]["test"])
        if test[0] == "CMD-SHELL":
            test = ["sh", "-c", " ".join(test[1:])]
        elif test[0] == "CMD":
            test = test[1:]
        result = subprocess.run(
            self.args(service, test),
            cwd=self.mount(service),
            env=self.env(service),
            capture_output=True,
            timeout=60,
        )
        return result.returncode == 0

    def wait_healthy(self, service: str, log_dir: Path, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.healthy(service):
            process = self.processes[service]
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{service} is not healthy: {self.log(service, log_dir)}")
            time.sleep(1)

    def stop(self, service: str, timeout_s: float = 60) -> None:
        process = self.processes.pop(service, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def stop_all(self) -> None:
        for service in reversed(list(self.processes)):
            self.stop(service)

    @staticmethod
    def log(service: str, log_dir: Path) -> str:
        path = log_dir / f"{service}.log"
        return path.read_text()[-4000:] if path.exists() else "(no log)"

    def start_order(self) -> list[str]:
        """Services in dependency order (depends_on), the database service left out."""
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order or name == self.database_service:
                return
            for dependency in self.services[name].get("depends_on") or {}:
                visit(dependency)
            order.append(name)

        for name in self.services:
            visit(name)
        return order

    def up(self, log_dir: Path) -> None:
        """Start every service as `docker-compose up` would: in dependency order, each after
        its dependencies are healthy or, for a one-shot (restart: "no"), have exited 0."""
        for name in self.start_order():
            for dependency, condition in self.conditions(name).items():
                if dependency != self.database_service and condition == "service_healthy":
                    self.wait_healthy(dependency, log_dir)
            if str(self.services[name].get("restart", "")) == "no":
                self.run_to_completion(name, log_dir)
            else:
                self.start(name, log_dir)

    def conditions(self, service: str) -> dict[str, str]:
        depends = self.services[service].get("depends_on") or {}
        if isinstance(depends, list):
            return dict.fromkeys(depends, "service_started")
        return {
            name: (spec or {}).get("condition", "service_started") for name, spec in depends.items()
        }
