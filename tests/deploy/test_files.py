"""The guide's files say only true things: units, env example, commands, settings and links."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer

from storesync.cli import app
from storesync.settings import Settings
from tests.deploy.support import (
    DATA_DIR,
    DEPLOY,
    ENV_EXAMPLE,
    ENV_FILE,
    GUIDE,
    INSTALLED_BIN,
    PLACEHOLDER,
    STORESYNC_BIN,
    STORESYNCCTL,
    UNITS,
    exec_start,
    is_setting,
    read_env_file,
    read_unit,
    settings_named,
)

API_UNIT = UNITS / "storesync-api.service"
WORKER_UNIT = UNITS / "storesync-worker@.service"
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&"}


def cli_command(words: list[str]) -> tuple[Any, list[str]]:
    """The storesync (sub)command ``words`` name, and the words after it.

    (Typer's command objects are its own copy of click's: they are told apart by their
    attributes, not their classes.)
    """
    command: Any = typer.main.get_command(app)
    rest = list(words)
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def check_invocation(words: list[str], where: str) -> None:
    """``words`` (after ``storesync``) name a real command with real options."""
    command, rest = cli_command(words)
    assert not hasattr(command, "commands"), f"{where}: `{shlex.join(words)}` names no command"
    known = {"--help"}
    for param in command.params:
        known.update(param.opts, param.secondary_opts)
    for word in rest:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            assert option in known, f"{where}: `storesync {shlex.join(words)}`: no {option}"


def invocations(text: str) -> list[list[str]]:
    """The storesync and storesyncctl commands in shell text, as their arguments."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        segment: list[str] = []
        for word in [*words, ";"]:
            if word not in SHELL_OPERATORS:
                segment.append(word)
                continue
            while segment[:1] == ["sudo"]:
                segment = segment[3:] if segment[1:2] == ["-u"] else segment[1:]
            if len(segment) > 1 and Path(segment[0]).name in ("storesync", "storesyncctl"):
                found.append(segment[1:])
            segment = []
    return found


def test_the_units_run_storesync_with_the_env_file_as_the_guide_says() -> None:
    for path in (API_UNIT, WORKER_UNIT):
        unit = read_unit(path)
        assert set(unit.sections()) == {"Unit", "Service", "Install"}, path.name
        service = unit["Service"]
        assert service["User"] == "storesync"
        assert service["EnvironmentFile"] == ENV_FILE
        assert service["WorkingDirectory"] == DATA_DIR
        assert service["StateDirectory"] == Path(DATA_DIR).name
        assert service["Restart"] == "on-failure"
        assert service.get("KillSignal", "SIGTERM") == "SIGTERM"
        assert float(service["TimeoutStopSec"]) > 0
        assert unit["Install"]["WantedBy"] == "multi-user.target"
        argv = exec_start(service["ExecStart"], "9101")
        assert argv[0] == str(STORESYNC_BIN)
        check_invocation(argv[1:], path.name)

    api = exec_start(read_unit(API_UNIT)["Service"]["ExecStart"], None)
    assert api[1:3] == ["serve", "--no-worker"]
    worker = read_unit(WORKER_UNIT)["Service"]["ExecStart"]
    assert shlex.split(worker)[:2] == [INSTALLED_BIN, "worker"]
    assert "--metrics-port %i" in worker, "the instance name is the metrics port"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify_finds_nothing_wrong(tmp_path: Path) -> None:
    # verify checks that ExecStart is executable: point it at this checkout's storesync.
    for path in (API_UNIT, WORKER_UNIT):
        text = path.read_text().replace(INSTALLED_BIN, str(STORESYNC_BIN))
        (tmp_path / path.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no",
         str(tmp_path / API_UNIT.name), str(tmp_path / "storesync-worker@9101.service")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr.strip()) == (0, ""), result.stderr


def test_the_env_example_sets_real_settings_to_valid_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = read_env_file(ENV_EXAMPLE)  # one KEY=value a line that systemd and sh read alike
    assert values, "the env example sets nothing"
    assert [k for k in values if not is_setting(k)] == []
    placeholders = {k for k, v in values.items() if PLACEHOLDER in v}
    assert placeholders == {
        "STORESYNC_DATABASE_URL",
        "STORESYNC_SECRET_KEY",
        "STORESYNC_SHOPIFY_API_SECRET",
    }
    for key in [k for k in os.environ if k.startswith("STORESYNC_")]:
        monkeypatch.delenv(key)
    settings = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]  # raises on a bad value
    assert settings.resolved_database_url.startswith("postgresql://")
    for key, value in values.items():
        typed = getattr(settings, key.removeprefix("STORESYNC_").lower())
        if PLACEHOLDER not in value:
            assert typed == type(typed)(value), f"{key}={value} reads as {typed!r}"


def test_the_guides_settings_table_shows_the_env_examples_values() -> None:
    example = read_env_file(ENV_EXAMPLE)
    section = GUIDE.read_text().split("## The settings that matter", 1)[1].split("\n## ", 1)[0]
    shown: dict[str, str] = {}
    for names, value in re.findall(r"^\| (`STORESYNC_[^|]+) \| ([^|]+) \|", section, re.M):
        keys = re.findall(r"`(STORESYNC_\w+)`", names)
        values = re.findall(r"`([^`]+)`", value) or [value.strip()]
        pairs = values if len(values) == len(keys) else [value] * len(keys)
        shown.update(zip(keys, pairs, strict=True))
    assert set(shown) == set(example), "the table and the env example set different settings"
    for key, value in example.items():
        if PLACEHOLDER not in value:
            assert shown[key] == value, f"the guide shows {key}={shown[key]}, the example {value}"


def test_every_setting_the_guide_and_the_files_name_is_real() -> None:
    assert len(settings_named(GUIDE.read_text())) >= 12
    for path in (GUIDE, ENV_EXAMPLE, API_UNIT, WORKER_UNIT, STORESYNCCTL):
        named = settings_named(path.read_text())
        assert sorted(n for n in named if not is_setting(n)) == [], path.name


def test_every_command_the_guide_shows_exists_with_its_options() -> None:
    text = GUIDE.read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    spans = [s for s in re.findall(r"`([^`\n]+)`", text) if s.startswith("storesync")]
    shown = [words for chunk in [*blocks, *spans] for words in invocations(chunk)]
    assert len(shown) >= 10, shown
    for words in shown:
        check_invocation(words, "docs/deploy.md")
    assert ["backup", "/var/backups/storesync/storesync-$(date", "+%F).dump"] in shown


def test_every_file_and_section_the_guide_links_exists() -> None:
    text = GUIDE.read_text()
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links
    for link in links:
        if link.startswith("#"):
            assert link[1:] in anchors, f"no section {link}"
        else:
            assert (GUIDE.parent / link).exists(), f"no file {link}"
    for anchor in re.findall(r"docs/deploy\.md#([a-z0-9-]+)", ENV_EXAMPLE.read_text()):
        assert anchor in anchors, f"the env example links a missing section #{anchor}"
    for path in [*DEPLOY.rglob("*")]:
        if path.is_file():
            assert path.relative_to(GUIDE.parent.parent).as_posix() in text, (
                f"the guide does not show {path.name}"
            )


def test_storesyncctl_says_what_is_missing(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin:/bin"}
    missing = subprocess.run(
        [str(STORESYNCCTL), "stats"],
        env={**base, "STORESYNCCTL_ENV_FILE": str(tmp_path / "nope.env")},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert f"cannot read {tmp_path / 'nope.env'}" in missing.stderr
    (tmp_path / "ok.env").write_text("STORESYNC_DATA_DIR=/nowhere\n")
    no_program = subprocess.run(
        [str(STORESYNCCTL), "stats"],
        env={**base, "STORESYNCCTL_ENV_FILE": str(tmp_path / "ok.env"),
             "STORESYNCCTL_BIN": str(tmp_path / "storesync")},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert no_program.returncode == 2
    assert "is not an executable storesync" in no_program.stderr


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
