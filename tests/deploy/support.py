"""The deployment guide's files, run for real.

- :func:`read_unit`, :func:`read_env_file`: the systemd units and the env file, read the way
  systemd reads them (for the simple syntax the guide allows).
- :class:`Services`: a stand-in for systemd. It starts a unit's ``ExecStart`` line with the
  unit's ``EnvironmentFile`` and ``WorkingDirectory`` as real processes, and stops them with
  the unit's ``KillSignal`` within its ``TimeoutStopSec``.
- :func:`guide_block`, :func:`run_block`: the shell blocks of ``docs/deploy.md`` marked
  ``<!-- tested: NAME -->``, run with bash exactly as written, with only the paths and names
  that the guide fixes pointed at the test's (each substitution must match).

The machine paths of the guide (``/etc/storesync``, ``/var/lib/storesync``, the venv in
``/opt``) map to a test's directories; ``sudo -u USER`` runs the command as the test's user.
"""

from __future__ import annotations

import asyncio
import configparser
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from storesync.accounts import create_token
from storesync.queue.stats import queue_stats
from storesync.settings import Settings
from storesync.storage import connect
from tests.api.support import bearer
from tests.harness import wait_for

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNITS = DEPLOY / "systemd"
ENV_EXAMPLE = DEPLOY / "storesync.env.example"
STORESYNCCTL = DEPLOY / "storesyncctl"
GUIDE = REPO / "docs" / "deploy.md"

#: Paths the guide and the units fix on a real machine.
INSTALLED_BIN = "/opt/storesync/venv/bin/storesync"
ENV_FILE = "/etc/storesync/storesync.env"
DATA_DIR = "/var/lib/storesync"
BACKUP_DIR = "/var/backups/storesync"
#: The storesync command of this checkout's virtual environment.
STORESYNC_BIN = Path(sys.executable).with_name("storesync")

#: What an env file's value may hold, so that systemd and ``sh`` (storesyncctl) read it alike:
#: no quotes, spaces, ``$``, backslashes or shell operators.
ENV_LINE = re.compile(r"^(STORESYNC_[A-Z0-9_]+)=([A-Za-z0-9_.:/@%+,=?~{}-]*)$")
PLACEHOLDER = "CHANGE-ME"
#: Klaviyo's report windows as the test simulator widens them (tests.harness.fast_config): at
#: the real 2 calls a minute, every second sync of a store would wait a minute.
FAST_KLAVIYO = {
    "STORESYNC_KLAVIYO_REPORTS_PER_SECOND": "20",
    "STORESYNC_KLAVIYO_REPORTS_PER_MINUTE": "600",
}


# -- unit and env files --------------------------------------------------------------------


def read_unit(path: Path) -> configparser.ConfigParser:
    """A unit file's sections; a key given twice is an error (strict)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(path.read_text(), source=str(path))
    return parser


def unit_path(name: str) -> tuple[Path, str | None]:
    """``storesync-worker@9101.service`` → (the template's file, ``"9101"``)."""
    if not name.endswith(".service"):
        name += ".service"
    if "@" in name:
        prefix, rest = name.split("@", 1)
        instance = rest.removesuffix(".service")
        return UNITS / f"{prefix}@.service", instance
    return UNITS / name, None


def read_env_file(path: Path) -> dict[str, str]:
    """An EnvironmentFile: ``KEY=value`` lines, ``#`` comments; anything else fails."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        match = ENV_LINE.match(line)
        assert match, f"{path}:{number}: not a KEY=value line systemd and sh read alike: {line!r}"
        assert match[1] not in values, f"{path}:{number}: {match[1]} is set twice"
        values[match[1]] = match[2]
    return values


def write_env_file(path: Path, values: dict[str, str]) -> Path:
    lines = [f"{key}={value}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o640)
    read_env_file(path)  # the test's own values obey the rules too
    return path


def deployed_env(
    replace: dict[str, str], *, drop: tuple[str, ...] = (), **extra: str
) -> dict[str, str]:
    """The env example's settings with the test's values for its placeholders.

    ``replace`` must name only settings the example sets, and must leave no placeholder.
    """
    values = read_env_file(ENV_EXAMPLE)
    unknown = set(replace) - set(values)
    assert not unknown, f"the env example does not set {unknown}"
    values.update(replace)
    for key in drop:
        del values[key]
    left = [k for k, v in values.items() if PLACEHOLDER in v]
    assert not left, f"the test does not fill in {left}"
    values.update(extra)
    return values


def settings_named(text: str) -> set[str]:
    """Every ``STORESYNC_…`` name in ``text``."""
    return set(re.findall(r"\bSTORESYNC_[A-Z0-9_]*[A-Z0-9]\b", text))


def is_setting(name: str) -> bool:
    return name.removeprefix("STORESYNC_").lower() in Settings.model_fields


# -- the guide's shell blocks ---------------------------------------------------------------


def guide_block(name: str) -> str:
    """The fenced block right after ``<!-- tested: name -->`` in the guide."""
    found = re.search(
        rf"<!-- tested: {re.escape(name)} -->\n```sh\n(.*?)\n```", GUIDE.read_text(), re.S
    )
    assert found, f"docs/deploy.md has no block marked <!-- tested: {name} -->"
    return found[1]


def commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    lines = [shlex.split(line, comments=True) for line in joined.splitlines()]
    return [shlex.join(words) for words in lines if words]


#: ``sudo -u USER cmd`` runs ``cmd`` as the test's user, and ``systemctl`` only writes down
#: what it was asked (the test then does it with :class:`Services`, in the same order).
PRELUDE = """
sudo() { if [ "$1" = -u ]; then shift 2; fi; "$@"; }
systemctl() { printf '%s\\n' "$*" >> "$SYSTEMCTL_CALLS"; }
"""


@dataclass
class BlockRun:
    stdout: str
    stderr: str
    systemctl: list[list[str]]  # the systemctl calls, in order


def run_block(
    name: str,
    substitutions: dict[str, str],
    env: dict[str, str],
    *,
    timeout: float = 120,
) -> BlockRun:
    """Run the guide's block ``name`` with bash, after ``substitutions`` (each must match)."""
    script = guide_block(name)
    for old, new in substitutions.items():
        assert old in script, f"the guide's {name!r} block no longer contains {old!r}"
        script = script.replace(old, new)
    calls = Path(env["HOME"]) / f"systemctl-{name}-{time.monotonic_ns()}"
    calls.touch()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", PRELUDE + script],
        env={**env, "SYSTEMCTL_CALLS": str(calls)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"the guide's {name!r} block failed ({result.returncode}):\n{script}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return BlockRun(
        result.stdout, result.stderr, [line.split() for line in calls.read_text().splitlines()]
    )


def tool_env(env_file: Path, tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of an operator's shell: storesyncctl on PATH, pointed at ``env_file``."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / "storesyncctl"
    if not link.exists():
        link.symlink_to(STORESYNCCTL)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORESYNC", "PG"))}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        HOME=str(tmp),
        STORESYNCCTL_ENV_FILE=str(env_file),
        STORESYNCCTL_BIN=str(STORESYNC_BIN),
        COLUMNS="200",
        **extra,
    )
    return env


def storesyncctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``storesyncctl ARGS`` as an operator runs it; fails the test on a non-zero exit."""
    result = subprocess.run(
        [str(STORESYNCCTL), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, (
        f"storesyncctl {shlex.join(args)} exited {result.returncode}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result


# -- a stand-in for systemd -----------------------------------------------------------------


@dataclass
class Machine:
    """One machine of the deployment: its own ``/var/lib/storesync`` and env file."""

    name: str
    data_dir: Path
    env_file: Path

    @classmethod
    def create(cls, name: str, tmp: Path, values: dict[str, str]) -> Machine:
        data_dir = tmp / name / "var-lib-storesync"
        data_dir.mkdir(parents=True)
        mapped = {k: v.replace(DATA_DIR, str(data_dir)) for k, v in values.items()}
        env_file = write_env_file(tmp / name / "storesync.env", mapped)
        return cls(name, data_dir, env_file)


@dataclass
class Service:
    unit: str
    machine: Machine
    process: subprocess.Popen[bytes]
    log: Path
    stop_timeout: float
    kill_signal: int


@dataclass
class Services:
    """Starts and stops units as systemd would, as this test's processes."""

    logs: Path
    running: dict[str, Service] = field(default_factory=dict)
    exits: dict[str, list[int]] = field(default_factory=dict)

    def start(
        self, unit: str, machine: Machine, *, port: int | None = None, drop: tuple[str, ...] = ()
    ) -> Service:
        """Start ``unit`` on ``machine``; ``port`` replaces the API's ``--port``, and the
        arguments in ``drop`` are left out (as an operator's edit of the unit would)."""
        assert unit not in self.running, f"{unit} is already running"
        path, instance = unit_path(unit)
        service = read_unit(path)["Service"]
        argv = exec_start(service["ExecStart"], instance)
        for arg in drop:
            assert arg in argv, f"{unit}'s ExecStart has no {arg}"
            argv.remove(arg)
        if port is not None:
            argv[argv.index("--port") + 1] = str(port)
        assert service["EnvironmentFile"] == ENV_FILE
        assert service["WorkingDirectory"] == DATA_DIR
        env = {
            "PATH": os.environ["PATH"],
            "LANG": "C.UTF-8",
            "HOME": str(machine.data_dir),
            **read_env_file(machine.env_file),
        }
        log = self.logs / f"{machine.name}-{unit}-{len(self.exits.get(unit, []))}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, env=env, cwd=machine.data_dir, stdout=out, stderr=subprocess.STDOUT
            )
        running = Service(
            unit,
            machine,
            process,
            log,
            stop_timeout=float(service.get("TimeoutStopSec", "90")),
            kill_signal=getattr(signal, service.get("KillSignal", "SIGTERM")),
        )
        self.running[unit] = running
        return running

    def stop(self, unit: str) -> int:
        """Send the unit's KillSignal; fail if it does not exit within TimeoutStopSec.

        Returns 0 for an exit that systemd counts as clean: status 0, or death by the signal
        systemd sent (uvicorn re-raises SIGTERM after its graceful shutdown). Otherwise the
        exit status, or minus the signal that ended the process.
        """
        service = self.running.pop(unit)
        service.process.send_signal(service.kill_signal)
        try:
            code = service.process.wait(service.stop_timeout)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()
            raise AssertionError(
                f"{unit} did not stop within TimeoutStopSec={service.stop_timeout:g}"
            ) from None
        if code == -service.kill_signal:
            code = 0
        self.exits.setdefault(unit, []).append(code)
        return code

    def restart(self, unit: str, **options: Any) -> Service:
        machine = self.running[unit].machine
        self.stop(unit)
        return self.start(unit, machine, **options)

    def stop_all(self) -> None:
        for unit in list(self.running):
            try:
                self.stop(unit)
            except AssertionError:
                pass  # already killed; the test itself reports what went wrong

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))


def exec_start(line: str, instance: str | None) -> list[str]:
    """A unit's ExecStart as argv: specifiers expanded, the installed path mapped to ours."""
    for specifier in re.findall(r"%.", line):
        assert specifier in ("%i", "%%"), f"the test does not expand {specifier} in {line!r}"
    if "%i" in line:
        assert instance is not None, f"{line!r} needs an instance name"
        line = line.replace("%i", instance)
    argv = shlex.split(line.replace("%%", "%"))
    assert argv[0] == INSTALLED_BIN, f"ExecStart runs {argv[0]}, not {INSTALLED_BIN}"
    return [str(STORESYNC_BIN), *argv[1:]]


def wait_healthy(url: str, service: Service, timeout: float = 60) -> dict[str, Any]:
    """``GET /healthz`` until it answers 200; its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        if service.process.poll() is not None:
            raise AssertionError(f"{service.unit} exited:\n{service.log.read_text()}")
        try:
            answer = httpx.get(f"{url}/healthz", timeout=2)
            if answer.status_code == 200:
                return dict(answer.json())
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}/healthz did not answer: {service.log.read_text()}")
        time.sleep(0.1)


class Api:
    """A client of a deployment's HTTP API, as a user of it."""

    def __init__(self, url: str, token: str) -> None:
        self.client = httpx.Client(base_url=url, headers=bearer(token), timeout=30)

    def add_store(self, shop: dict[str, Any], periods: list[str] | None = None) -> int:
        """Add the simulator's store ``shop``; ``periods``: what the scheduler refreshes."""
        answer = self.client.post(
            "/api/stores",
            json={
                "name": shop["name"],
                "shopify_domain": shop["shop_domain"],
                "shopify_token": shop["shopify_token"],
                "klaviyo_key": shop["klaviyo_private_key"],
                "timezone": shop["timezone"],
                "refresh_periods": periods,
            },
        )
        assert answer.status_code == 201, answer.text
        return int(answer.json()["id"])

    def queue(self, store: int, dates: dict[str, str]) -> int:
        """Queue a sync; its job id."""
        queued = self.client.post(f"/api/stores/{store}/sync", json=dates)
        assert queued.status_code == 202, queued.text
        return int(queued.json()["id"])

    def sync(self, store: int, dates: dict[str, str]) -> dict[str, Any]:
        """Queue a sync and wait for it to complete; the job."""
        job_id = self.queue(store, dates)

        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = self.client.get(f"/api/jobs/{job_id}").json()
            return job if job["status"] in ("completed", "failed") else None

        job: dict[str, Any] = wait_for(finished, timeout=90, what="the sync")
        assert job["status"] == "completed", job
        return job

    def job(self, job_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self.client.get(f"/api/jobs/{job_id}").json()
        return found

    def show(self, store: int, dates: dict[str, str]) -> dict[str, Any]:
        answer = self.client.get(f"/api/stores/{store}/dashboard", params=dates)
        assert answer.status_code == 200, answer.text
        shown: dict[str, Any] = answer.json()
        assert shown["meta"]["stale"] is False
        return shown

    def user_jobs(self) -> list[tuple[int, str]]:
        items = self.client.get("/api/jobs", params={"limit": 100}).json()["items"]
        return sorted((j["id"], j["status"]) for j in items if j["reason"] == "user")


# -- data, in-process ------------------------------------------------------------------------


def token_for(env_file: Path, account: str = "default") -> str:
    """A new API token, written straight to the deployment's database."""
    settings = settings_of(env_file)

    async def main() -> str:
        database = connect(settings, poolclass=NullPool)
        try:
            return await create_token(database, account)
        finally:
            await database.dispose()

    return asyncio.run(main())


def live_workers(env_file: Path) -> list[dict[str, Any]]:
    """The live workers, as ``storesync stats --json`` lists them (read directly: fast)."""
    settings = settings_of(env_file)

    async def main() -> list[dict[str, Any]]:
        database = connect(settings, poolclass=NullPool)
        try:
            workers = (await queue_stats(database, settings)).to_json()["workers"]
            assert isinstance(workers, list)
            return workers
        finally:
            await database.dispose()

    return asyncio.run(main())


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of a read-only query on the database at ``url``."""

    async def main() -> list[tuple[Any, ...]]:
        database = connect(Settings(database_url=url), poolclass=NullPool)
        try:
            async with database.read() as conn:
                return [tuple(row) for row in await conn.execute(text(sql))]
        finally:
            await database.dispose()

    return asyncio.run(main())


def settings_of(env_file: Path) -> Settings:
    """The Settings the units of ``env_file`` run with."""
    values = {k.removeprefix("STORESYNC_").lower(): v for k, v in read_env_file(env_file).items()}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def assert_no_secret(secrets: list[str], *texts: str) -> None:
    """None of ``secrets`` appears in any of ``texts``."""
    assert all(len(s) >= 8 for s in secrets), "a secret too short to search for"
    for output in texts:
        for secret in secrets:
            assert secret not in output, "a secret appears in a log or an output"
