"""``storesync.queue`` is the only code that reads or writes the queue's tables.

The tables are ``sync_queue`` (model ``SyncJob``), ``sync_job_events`` (``JobEvent``),
``sync_workers`` (``Worker``) and the view ``v_sync_queue_stats``. Only the queue package, the
models that declare them and the migrations that create them may name them; the rest of the
service goes through :mod:`storesync.queue` (``JobQueue``, ``queue.reads``, ``queue.stats``).
The check reads the source (the AST), so it needs no database.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import storesync

PACKAGE = Path(storesync.__file__).parent

#: Where the queue's tables may be named (relative to the package).
ALLOWED = ("queue/", "storage/models.py", "storage/migrations/")
QUEUE_TABLES = ("sync_queue", "sync_job_events", "sync_workers", "v_sync_queue_stats")
QUEUE_MODELS = frozenset({"SyncJob", "JobEvent", "Worker"})
#: The queue modules' table objects (``JOBS = table_of(SyncJob)``, …).
QUEUE_TABLE_OBJECTS = frozenset({"JOBS", "EVENTS", "WORKERS"})
_TABLE_NAME = "|".join(QUEUE_TABLES)
#: A table named in SQL text (not in prose: docstrings and labels may mention it).
SQL_USE = re.compile(
    rf"\b(?:from|join|into|update|table|exists)\s+(?:{_TABLE_NAME})\b", re.IGNORECASE
)


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring nodes of the module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
        ):
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def violations_in(source: str, where: str) -> list[str]:
    """Every use of the queue's tables in one module's source."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {alias.name for alias in node.names}
            if node.module == "storesync.storage.models" and names & QUEUE_MODELS:
                found.append(f"{line}: imports {sorted(names & QUEUE_MODELS)} (a queue model)")
            if node.module.startswith("storesync.queue") and names & QUEUE_TABLE_OBJECTS:
                found.append(
                    f"{line}: imports the queue's table {sorted(names & QUEUE_TABLE_OBJECTS)}"
                )
        elif isinstance(node, ast.Attribute) and node.attr in QUEUE_MODELS - {"Worker"}:
            found.append(f"{line}: uses .{node.attr} (a queue model)")
        elif isinstance(node, ast.Name) and node.id in QUEUE_MODELS - {"Worker"}:
            found.append(f"{line}: uses {node.id} (a queue model)")
        elif isinstance(node, ast.Call):
            callee = node.func
            name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
            first = node.args[0] if node.args else None
            if (
                name in {"table", "Table"}
                and isinstance(first, ast.Constant)
                and first.value in QUEUE_TABLES
            ):
                found.append(f"{line}: builds table {first.value!r}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and SQL_USE.search(node.value)
        ):
            found.append(f"{line}: SQL on a queue table: {SQL_USE.search(node.value)[0]!r}")  # type: ignore[index]
    return found


def package_violations(root: Path) -> list[str]:
    """Every use of the queue's tables in the package at ``root`` outside where it is allowed."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(ALLOWED):
            continue
        found += violations_in(path.read_text(encoding="utf-8"), relative)
    return found


def test_only_the_queue_names_its_tables() -> None:
    assert package_violations(PACKAGE) == []


def test_the_check_finds_each_kind_of_use() -> None:
    """Each way of reaching the tables is caught (this is how the check failed before
    ``queue/reads.py``: ``web/panel.py``, ``web/overview.py``, ``api/reads.py``,
    ``scheduler.py`` and ``audit.py`` all did the first two)."""
    uses = {
        "from storesync.storage.models import SyncJob, table_of": "a queue model",
        "from storesync.storage.models import JobEvent": "a queue model",
        "from storesync.storage.models import Worker": "a queue model",
        "JOBS = table_of(models.SyncJob)": "a queue model",
        "from storesync.queue.transitions import JOBS": "the queue's table",
        "from storesync.queue.workers import WORKERS": "the queue's table",
        "q = text('SELECT count(*) FROM sync_queue')": "SQL on a queue table",
        "q = 'DELETE FROM sync_job_events WHERE id = 1'": "SQL on a queue table",
        "q = 'SELECT * FROM v_sync_queue_stats'": "SQL on a queue table",
        "t = table('sync_workers')": "builds table",
    }
    for source, kind in uses.items():
        found = violations_in(source, "m.py")
        assert found and kind in found[0], (source, found)


def test_prose_and_other_tables_pass() -> None:
    allowed = '''
"""Rows of ``sync_queue``: select from sync_queue in the docstring is prose."""
from storesync.storage.models import Store, CacheEntry, table_of
from storesync.worker import Worker
label = Table(title="sync_queue")
q = "SELECT * FROM store_sync_cache"
'''
    assert violations_in(allowed, "m.py") == []
