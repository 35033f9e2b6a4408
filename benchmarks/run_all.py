"""Run every benchmark and write docs/benchmarks.md from their output (``make bench``).

Run from the repository root::

    .venv/bin/python -m benchmarks.run_all                    # all five: 20 to 45 minutes
    .venv/bin/python -m benchmarks.run_all --only scale,sync  # some; the rest from last time
    .venv/bin/python -m benchmarks.run_all --quick            # a smoke run, about ten minutes
    .venv/bin/python -m benchmarks.run_all --render           # rewrite the page, run nothing

Each benchmark runs as ``python -m benchmarks.MODULE`` in a subprocess (the noisy neighbour is
the scale benchmark's ``--noisy-neighbour`` scenario); its output is echoed and
kept, with the command, the date, the time taken, the exit status and the load average, in
``docs/benchmarks/NAME.txt``. The page is then written from the kept outputs, so ``--only``
re-runs some benchmarks and keeps the others' last figures. ``--quick`` runs small sizes and
writes everything to a scratch directory instead (``--out``), never to docs/: its figures only
show that the benchmarks work.

The page: a headline (the ratios against procrastinate, pgqueuer and the naive Shopify
client, and the 1,000-store refresh against its lower bound), the machine, then one section
per benchmark with what it measures and its figures as printed. run_all exits with status 1
when a benchmark failed (the scale run fails when a limit broke).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


@dataclass(frozen=True)
class Benchmark:
    """One ``benchmarks.MODULE`` run and its arguments for a full and a quick run."""

    name: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    module: str = ""  # default: the name

    @property
    def command(self) -> str:
        return f"benchmarks.{self.module or self.name}"


BENCHMARKS = {
    b.name: b
    for b in (
        Benchmark(
            "queue",
            (),
            tuple(
                "--jobs 300 --e2e-jobs 100 --stores 200 --workers 1 --latency-samples 30 "
                "--sqlite-latency-samples 10".split()
            ),
        ),
        Benchmark("sync", (), tuple("--orders 2000 --memory-orders 20000".split())),
        Benchmark("api", (), tuple("--rounds 1 --seconds 1 --warmup 0.5".split())),
        Benchmark(
            "scale",
            (),
            tuple("--stores 60 --concurrency 60 --users 10 --user-window 10".split()),
        ),
        Benchmark(
            "noisy",
            tuple(
                "--stores 40 --accounts 4 --workers 2 --concurrency 8 --users 40 "
                "--user-window 30 --noisy-neighbour 400 --running-cap 6 --wide-limits "
                "--latency-ms 80".split()
            ),
            tuple(
                "--stores 12 --accounts 3 --workers 1 --concurrency 4 --users 9 "
                "--user-window 8 --noisy-neighbour 60 --running-cap 3 --wide-limits "
                "--latency-ms 40".split()
            ),
            module="scale",
        ),
    )
}


# -- running -----------------------------------------------------------------------------------


@dataclass
class Output:
    """A benchmark's kept output: what ran, when, how it ended, and what it printed."""

    command: str
    date: str
    seconds: float
    status: int
    load: str
    text: str

    def dump(self) -> str:
        return (
            f"# command: {self.command}\n# date: {self.date}\n# seconds: {self.seconds:.0f}\n"
            f"# exit status: {self.status}\n# load at the end: {self.load}\n{self.text}"
        )

    @classmethod
    def load_from(cls, path: Path) -> Output | None:
        if not path.exists():
            return None
        head: dict[str, str] = {}
        lines = path.read_text().splitlines(keepends=True)
        while lines and lines[0].startswith("# ") and ": " in lines[0]:
            key, value = lines.pop(0)[2:].rstrip("\n").split(": ", 1)
            head[key] = value
        return cls(
            head.get("command", "?"),
            head.get("date", "?"),
            float(head.get("seconds", "nan")),
            int(head.get("exit status", "0")),
            head.get("load at the end", "?"),
            "".join(lines),
        )


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def run(benchmark: Benchmark, args: tuple[str, ...]) -> Output:
    """Run ``python -m benchmarks.MODULE ARGS``, echoing its output as it comes."""
    command = [sys.executable, "-m", benchmark.command, *args]
    shown = " ".join(["python", "-m", benchmark.command, *args])
    print(f"\n=== {shown}", flush=True)
    began, date = time.monotonic(), f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    lines: list[str] = []
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    return Output(
        shown, date, time.monotonic() - began, process.returncode, load_average(), "".join(lines)
    )


# -- reading the outputs -------------------------------------------------------------------------


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in ``text``: rows of cells, the header first, the rule left out."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def table_with(text: str, *header: str) -> list[dict[str, str]]:
    """The rows, as dicts, of the first table whose header starts with ``header``."""
    for table in markdown_tables(text):
        if tuple(table[0][: len(header)]) == header:
            return [dict(zip(table[0], row, strict=False)) for row in table[1:]]
    return []


def between(text: str, start: str, end: str | None = None) -> str:
    """From the first line starting with ``start`` to the first after it starting with ``end``."""
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith(start)), None)
    if first is None:
        return ""
    last = next(
        (i for i in range(first + 1, len(lines)) if end and lines[i].startswith(end)), len(lines)
    )
    return "\n".join(lines[first:last]).strip()


def number(pattern: str, text: str) -> float | None:
    found = re.search(pattern, text)
    return float(found.group(1).replace(",", "")) if found else None


# -- the page ------------------------------------------------------------------------------------


def status_note(output: Output) -> str:
    note = f"Run {output.date}, {output.seconds / 60:.1f} min, load at the end {output.load}."
    if output.status:
        note += f" **The benchmark exited with status {output.status}: see its output.**"
    return f"{note}\n\n```\n{output.command}\n```"


def queue_section(output: Output) -> tuple[str, list[str]]:
    report = between(output.text, "Throughput in jobs/s", "(total")
    headline = []
    ratios = table_with(output.text, "rival", "workers", "enqueue", "drain")
    for row in ratios:
        headline.append(
            f"storesync's queue on PostgreSQL ÷ {row['rival']}, {row['workers']} worker(s): "
            f"enqueue {row['enqueue']}×, drain {row['drain']}×, end-to-end {row['end-to-end']}×"
        )
    for row in table_with(output.text, "queue", "wake-up", "samples"):
        if row["queue"] == "storesync (postgresql)":
            headline.append(
                f"an idle storesync worker claims a job {row['p50 ms']} ms (p50; p99 "
                f"{row['p99 ms']} ms) after the enqueue call, woken by {row['wake-up']}"
            )
    for row in table_with(output.text, "rival", "p50", "p99"):
        headline.append(
            f"enqueue-to-start latency ÷ {row['rival']} (below 1: quicker): "
            f"p50 {row['p50']}×, p99 {row['p99']}×"
        )
    text = f"""## Queue

No-op jobs through storesync's `JobQueue` on PostgreSQL and SQLite, and the same work through
procrastinate and pgqueuer on the same PostgreSQL, each used only through its public API, with
its workers in separate processes. `benchmarks/queue.py`'s docstring defines every figure:

- **enqueue/s**: single-job enqueue calls from several concurrent callers;
- **drain/s**: jobs queued beforehand, from the first start to the last completion;
- **end-to-end/s**: jobs queued while the workers run, from the first enqueue to the last
  completion;
- **latency**: from the enqueue call to the claim (storesync) or the task's start (rivals), with
  one idle worker.

{status_note(output)}

{report or "(no report found in the output)"}
"""
    return text, headline


SYNC_ROW = re.compile(
    r"^(paced|naive) \((.*?)\)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\S+)\s*$", re.M
)


def sync_section(output: Output) -> tuple[str, list[str]]:
    rows = {m[1]: m for m in SYNC_ROW.finditer(output.text)}
    setup = between(output.text, "Shopify sync of", "client").splitlines()
    memory = between(output.text, "Memory:")
    table = [
        "| client | wall | lower bound | ratio | THROTTLED | figures exact |",
        "|---|---:|---:|---:|---:|---|",
    ]
    labels = {
        "paced": "storesync (reads `throttleStatus`, paces)",
        "naive": "naive (ignores the budget, sleeps 1 s on THROTTLED)",
    }
    for key, label in labels.items():
        if key in rows:
            m = rows[key]
            table.append(f"| {label} | {m[3]} s | {m[4]} s | {m[5]} | {m[6]} | {m[7]} |")
    headline = [
        f"a Shopify sync {'by storesync' if key == 'paced' else 'by the naive client'} takes "
        f"{rows[key][5]}× the lower bound its cost budget sets ({rows[key][6]} THROTTLED)"
        for key in labels
        if key in rows
    ]
    text = f"""## Sync

A Shopify sync against the simulator over TCP, in a separate process. The store's cost bucket
is sized and refilled as the command says. The lower bound is the cost beyond the first
bucketful divided by the restore rate (`benchmarks/sync.py` explains the formula); the naive
client pages the same orders but ignores the budget and sleeps a second when THROTTLED, the
blind backoff users of other tools complain of. A long period then goes through a bulk
operation in a separate process, whose peak memory is measured.

{status_note(output)}

{setup[0] if setup else "(no setup line found in the output)"}

{chr(10).join(table)}

{memory}
"""
    return text, headline


def api_section(output: Output) -> tuple[str, list[str]]:
    rows = table_with(output.text, "database", "route")
    table = between(output.text, "| database |")
    headline = [
        f"a cache-hit dashboard read over HTTP on {r['database']}: {r['req/s']} req/s, p50 "
        f"{r['p50 ms']} ms; a bare SELECT route is {r['bare/api req/s']} as fast"
        for r in rows
        if r.get("bare/api req/s")
    ]
    text = f"""## API

Cache-hit dashboard reads over HTTP (`benchmarks/api.py`). One `storesync serve --no-worker`
process (uvicorn, one event loop) answers `GET /api/stores/{{id}}/dashboard` for a fresh, final
30-day period whose document holds 30 days, 12 campaigns and 6 flows (about 7 KB of JSON).
Concurrent keep-alive clients run in a closed loop, in rounds that alternate between two
servers; req/s is the median round, p50 and p99 are over all rounds.

"bare SELECT" is a benchmark-only Starlette route (not part of the product) in its own uvicorn
process: it runs the same cache read (one SELECT for the period and the previous one) and
answers the same document, with no auth and no validation. The ratio is what FastAPI, the
token-and-store lookup (one more SELECT) and response validation cost. The load generator
shares the machine: treat the absolute figures as a floor and the ratio as the finding.

{status_note(output)}

{table or "(no table found in the output)"}
"""
    return text, headline


def scale_section(output: Output) -> tuple[str, list[str]]:
    first = re.search(r"^[\d,]+ stores on the simulator", output.text, re.M)
    report = between(output.text, first.group(0), "(total") if first else ""
    refresh = number(r"\*\*Refresh of [\d,]+ stores: ([\d.]+) s\*\*", report)
    bound = number(r"\*\*Lower bound: ([\d.]+) s\*\*", report)
    stores = number(r"\*\*Refresh of ([\d,]+) stores", report)
    passed = number(r"for [\d.]+ s or more: (\d+);", report)
    waits = {row["reason"]: row for row in table_with(report, "reason", "priority", "jobs")}
    headline = []
    if refresh and bound and stores:
        line = (
            f"{stores:,.0f} stores refreshed by several workers in {refresh:.0f} s, "
            f"{refresh / bound:.2f}× the {bound:.0f} s lower bound that the providers' budgets "
            "and the concurrency limit imply"
        )
        free = waits.get("user, store free when queued")
        if free:
            line += (
                f"; users' requests, queued behind that work, started after {free['p50']} s "
                f"(p50; p95 {free['p95']} s) when their store was not already syncing"
            )
        if passed == 0:
            line += "; no claim passed over a better-ranked job"
        line += "; the limits held" if "BROKEN" not in report else "; A LIMIT BROKE"
        headline.append(line)
    text = f"""## Scale

Fairness and dynamic priority with many stores (`benchmarks/scale.py`, whose docstring says
what runs). The simulator serves the stores with the providers' real default limits; the
workers' built-in scheduler queues every store's refresh, and users ask for other periods
through the API while that work waits. The figures come from the job event log and the
simulator's request log; `storesync/audit.py` and `storesync/simulator/audit.py` say how.

{status_note(output)}

{report or "(no report found in the output)"}
"""
    return text, headline


def noisy_section(output: Output) -> tuple[str, list[str]]:
    report = between(output.text, "Noisy neighbour:", "### The flooded run")
    ratio = number(r"\*\*The others' p95 wait with the flood, [^:]+: ([\d.]+)×", report)
    unfair = re.search(r"fairness off[^|]*\| \d+ \| [\d.]+ \| ([\d.]+) \|", report)
    quiet = re.search(r"^\| quiet \| \d+ \| [\d.]+ \| ([\d.]+) \|", report, re.M)
    headline = []
    if ratio is not None:
        line = (
            f"one account flooding the queue left the other accounts' p95 wait at {ratio:.2f}× "
            "the quiet run's (fair claims and slots kept for other accounts"
        )
        if unfair and quiet and float(quiet[1]) > 0:
            line += f"; {float(unfair[1]) / float(quiet[1]):.0f}× with fairness off"
        headline.append(line + ")")
    text = f"""## Noisy neighbour

One account floods the queue; do the other accounts notice? (`benchmarks/scale.py
--noisy-neighbour`.) The stores are dealt to accounts; the other accounts' users ask for syncs
through the API while account 0 queues syncs of distinct days through the API as fast as it
answers. The same scenario runs quiet, flooded, flooded with fairness off
(`STORESYNC_ACCOUNT_FAIRNESS_POINTS=0`: equal priorities oldest first, the order before
accounts took turns), and flooded with slots kept for the other accounts
(`STORESYNC_MAX_RUNNING_JOBS_PER_ACCOUNT`, see storesync/queue/fairness.py: taking turns alone
still leaves another account's sync waiting for a slot to free, about one sync's duration).
Waits are queued → first claimed, from the job event log; the goal is the others' p95 within
2× of the quiet run's.

{status_note(output)}

{report or "(no report found in the output)"}

What fairness costs: in one process alternating the two claim statements (500 stores, 4,000
jobs queued on PostgreSQL, a loaded machine), `claim(limit=50)` took 20.4 ms with fair claims
against 19.3 ms without for one account, 30.5 against 26.3 ms with the jobs spread over 50
accounts. A user's enqueue under the per-account cap runs in a transaction holding the
account's advisory lock on PostgreSQL: 10.1 ms against 6.6 ms without the cap (median). The
scheduler's and webhooks' enqueues are not capped; the queue benchmark runs with the cap off
(one account queues every job).
"""
    return text, headline


SECTIONS: dict[str, Callable[[Output], tuple[str, list[str]]]] = {
    "queue": queue_section,
    "sync": sync_section,
    "api": api_section,
    "scale": scale_section,
    "noisy": noisy_section,
}


def machine_lines(outputs: dict[str, Output]) -> str:
    """The machine, as the latest benchmark that printed it saw it."""
    latest = max(outputs.values(), key=lambda o: o.date, default=None)
    about: dict[str, str] = {}
    for output in sorted(outputs.values(), key=lambda o: o.date):
        for line in output.text.splitlines():
            found = re.match(r"^\s*(cpus|memory|postgresql|sqlite|python): (.+)$", line)
            if found:
                about[found[1]] = found[2]
    lines = [f"- {key}: {value}" for key, value in about.items()]
    if latest:
        lines.append(f"- load average after the last benchmark: {latest.load}")
    return "\n".join(lines)


def render(outputs: dict[str, Output]) -> str:
    sections, headline = [], []
    for name, build in SECTIONS.items():
        if name in outputs:
            text, lines = build(outputs[name])
            sections.append(text)
            headline += lines
        else:
            rerun = f"`python -m benchmarks.run_all --only {name}`"
            sections.append(f"## {name.title()}\n\nNot run yet: {rerun}.\n")
    head = "\n".join(f"- {line}." for line in headline) or "- (no figures yet)"
    return f"""# Benchmarks

Written by `python -m benchmarks.run_all` (`make bench`) from the benchmarks' outputs, which are
kept in `docs/benchmarks/`. Do not edit by hand: change the template in `benchmarks/run_all.py`.
Other work may share the machine; each section gives the load average at the end of its run.
Compare ratios within a run rather than absolute figures across runs.

## Headline

{head}

## Machine

{machine_lines(outputs)}

{chr(10).join(sections)}"""


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="small sizes, to a scratch --out")
    parser.add_argument("--render", action="store_true", help="run nothing; rewrite the page")
    parser.add_argument("--out", type=Path, help="directory for the page and the outputs")
    args = parser.parse_args(argv)
    args.only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {list(BENCHMARKS)}")
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="storesync-bench-quick-")) if args.quick else DOCS
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kept = args.out / "benchmarks"
    kept.mkdir(parents=True, exist_ok=True)
    failed = []
    if not args.render:
        for name in args.only:
            benchmark = BENCHMARKS[name]
            ran = run(benchmark, benchmark.quick if args.quick else benchmark.full)
            (kept / f"{name}.txt").write_text(ran.dump())
            if ran.status:
                failed.append(name)
    outputs = {
        name: output
        for name in BENCHMARKS
        if (output := Output.load_from(kept / f"{name}.txt")) is not None
    }
    page = args.out / "benchmarks.md"
    page.write_text(render(outputs))
    print(f"\nwritten: {page} (outputs in {kept})")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
