"""Benchmark: the same memory -> memory scenarios on two versions of the code, in one run.

    python bench/bench_compare.py [--base REV] [--head REV] [--rounds N] [--quick] [--million]

Before (A) is the code of git revision ``--base`` (default 94142be), extracted with
``git archive REV engine connectors | tar -x``. After (B) is a snapshot of the working tree's
engine/ and connectors/ taken when the script starts (uncommitted changes included; edits made
while it runs do not leak into later rounds), or the code of ``--head REV`` if given.

Each run is its own subprocess with PYTHONPATH set to that side's tree, so ``import engine``
resolves there (checked: the child refuses to run if any loaded engine/connectors module comes
from elsewhere). Both sides run the scenario functions of the *current* bench/bench_memory.py
and the current bench/_calibrate.py, so only the engine differs; the scenarios use only the
public API both sides share (SyncEngine, ManualClock, SqliteStateStore, MemoryDirectory,
create_job("memoryToMemory", ...), start, run_cycle).

Scenarios, as in bench_memory.py: the initial cycle (100k users x 10 attributes, memory ->
memory through the SQLite store, page 500; calibration measured around the cycle) and the
incremental cycle (100 changes after an initial cycle, median of 5 cycles, at 10k and 100k
objects, and 1M with --million, which adds minutes and ~2 GB per run; calibration measured
around the whole child).

The host alternates between a full-speed and a slow phase lasting minutes (BENCHMARKS.md), so
the sides are interleaved per scenario, and the order flips every round (A B, B A, A B, ...)
so that a drift of speed within a round does not always favour the same side. A round's two
runs of a scenario are adjacent in time: their ratio (the "per-pair" ratio) is the figure that
a phase change is least likely to distort.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PACKAGES = ("engine", "connectors")
DEFAULT_BASE = "94142be"
CHANGES = 100
WRITE_AHEAD_LIMIT = 0.10  # the issue: the write-ahead may cost at most 10% of the initial rate
CPU_SHARE = 0.90  # a run whose child got less CPU time than this share of its wall time
DASH, TIMES = "\u2013", "\u00d7"  # as BENCHMARKS.md writes ranges and ratios


# ---------------------------------------------------------------------------------------------
# child: one scenario on one side's code


def load_side(root: Path) -> Any:
    """Import engine/connectors from ``root`` (via PYTHONPATH) and the current bench_memory."""
    for package in PACKAGES:
        module = importlib.import_module(package)
        where = Path(module.__file__ or "").resolve()
        if not where.is_relative_to(root):
            raise SystemExit(f"{package} imported from {where}, not from {root}: check PYTHONPATH")
    saved = list(sys.path)
    bench_memory = importlib.import_module("bench_memory")  # inserts the repo root into sys.path
    sys.path[:] = saved  # engine/connectors are already imported from root; keep it that way
    return bench_memory


def foreign_modules(root: Path) -> list[str]:
    """Loaded engine/connectors modules whose file is not under ``root`` (should be none)."""
    found = []
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in PACKAGES:
            continue
        file = getattr(module, "__file__", None)
        if file and not Path(file).resolve().is_relative_to(root):
            found.append(f"{name}={file}")
    return found


def child(root: Path, name: str, args: list[str]) -> None:
    began = time.perf_counter()
    result: dict[str, Any] = {}
    if name != "check":
        bench_memory = load_side(root)
        bench_memory.configure_logging("ERROR", force=True)
        with tempfile.TemporaryDirectory() as folder:
            if name == "initial":
                result = bench_memory.scenario_initial(int(args[0]), Path(folder))
            else:
                before = bench_memory.python_speed()
                result = bench_memory.scenario_incremental(int(args[0]), int(args[1]), Path(folder))
                result["calibration"] = round((before + bench_memory.python_speed()) / 2, 1)
    else:
        load_side(root)
    engine = sys.modules["engine"]
    result.update(
        engine_file=engine.__file__,
        foreign=foreign_modules(root),
        wall_s=round(time.perf_counter() - began, 1),
    )
    print(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# parent: materialise both sides, interleave the runs, print the table


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def materialise(rev: str, into: Path) -> str:
    """Extract engine/ and connectors/ of ``rev`` into ``into``; return the full commit id."""
    try:
        commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"unknown revision: {rev}") from None
    into.mkdir(parents=True)
    with subprocess.Popen(
        ["git", "archive", "--format=tar", commit, *PACKAGES], cwd=REPO, stdout=subprocess.PIPE
    ) as archive:
        subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=True)
        assert archive.stdout is not None
        archive.stdout.close()
    if archive.returncode != 0:
        raise SystemExit(f"git archive {rev} failed")
    return commit


def snapshot_working_tree(into: Path) -> str:
    """Copy the working tree's engine/ and connectors/ into ``into``; describe what it holds."""
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, into / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", *PACKAGES)
    if not dirty:
        return f"working tree (HEAD {head}, no uncommitted changes in engine/ connectors/)"
    stat = git("diff", "--shortstat", "HEAD", "--", *PACKAGES) or "untracked files only"
    untracked = sum(line.startswith("??") for line in dirty.splitlines())
    return (
        f"working tree (HEAD {head} + uncommitted: {stat.strip()}"
        f"{f', {untracked} untracked' if untracked else ''})"
    )


def fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def run_child(root: Path, name: str, args: list[str], label: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # replaces any inherited PYTHONPATH
    usage, began = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(root), name, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(
            f"{label}: scenario {name} {' '.join(args)} failed "
            f"(exit {done.returncode}); if the working tree is mid-change, "
            f"compare two revisions with --base REV --head REV"
        )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    # The host's slow phase slows CPU time with wall time (the share stays near 100%); another
    # process competing for these cores lowers the share: the run's figures are then unfair.
    result["cpu_share"] = cpu / wall
    if result["foreign"]:
        raise SystemExit(f"{label}: modules loaded from outside {root}: {result['foreign']}")
    return result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load() -> str:
    return "/".join(f"{figure:.2f}" for figure in os.getloadavg())


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    return (
        f"{fmt.format(statistics.median(values))} "
        f"({fmt.format(min(values))}{DASH}{fmt.format(max(values))})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=DEFAULT_BASE, help="revision of the 'before' side")
    parser.add_argument("--head", help="revision of the 'after' side (default: working tree)")
    parser.add_argument("--rounds", type=int, help="A/B rounds (default 5, --quick 2)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 20k-user initial cycle, 2 rounds"
    )
    parser.add_argument(
        "--million",
        action="store_true",
        help="also the incremental cycle at 1M objects (minutes, ~2 GB per run)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(Path(options.child[0]).resolve(), options.child[1], options.child[2:])
        return

    rounds = options.rounds or (2 if options.quick else 5)
    initial = 20_000 if options.quick else 100_000
    sizes = [10_000, 100_000]
    if options.million:
        sizes.append(1_000_000)
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench_compare_") as tmp:
        before_root, after_root = Path(tmp, "before").resolve(), Path(tmp, "after").resolve()
        base_commit = materialise(options.base, before_root)
        labels = {"before": f"{options.base} ({base_commit[:10]})"}
        if options.head:
            head_commit = materialise(options.head, after_root)
            labels["after"] = f"{options.head} ({head_commit[:10]})"
        else:
            after_root.mkdir()
            labels["after"] = snapshot_working_tree(after_root)
        roots = {"before": before_root, "after": after_root}
        prints = {side: fingerprint(root) for side, root in roots.items()}

        print(
            f"machine: {os.cpu_count()} cores, {cpu_model()}, {platform.platform()}, "
            f"Python {platform.python_version()} ({sys.executable}); "
            f"load average {load()} before the run"
        )
        for side, root in roots.items():
            check = run_child(root, "check", [], side)  # also compiles the .pyc files
            print(
                f"{side:<6} = {labels[side]}; code {prints[side]}; "
                f"engine.__file__ = {check['engine_file']}"
            )
        if os.getloadavg()[0] > 0.5:
            print(
                f"warning: load average {load()}: something else is running on these "
                f"cores. It slows the runs unevenly even when each still gets its full core "
                f"(cpu share near 100%): an A/A run (--head {options.base}) shows how much"
            )
        if prints["before"] == prints["after"]:
            print(
                "note: both sides hold identical engine/ and connectors/ code (an A/A run: "
                "the ratios below are the noise floor, not a change)"
            )
        print(
            f"rounds: {rounds}, order alternating per round (A B, B A, ...); initial cycle "
            f"{initial:,} users; incremental {CHANGES} changes at "
            f"{', '.join(f'{s:,}' for s in sizes)} objects",
            flush=True,
        )

        scenarios: list[tuple[str, list[str]]] = [("initial", [str(initial)])]
        scenarios += [("incremental", [str(size), str(CHANGES)]) for size in sizes]
        results: dict[tuple[str, str, int], dict[str, Any]] = {}
        for round_number in range(rounds):
            order = ("before", "after") if round_number % 2 == 0 else ("after", "before")
            for name, args in scenarios:
                key = name if name == "initial" else f"inc {int(args[0]):,}"
                cells = []
                for side in order:
                    result = run_child(roots[side], name, args, side)
                    results[(key, side, round_number)] = result
                    figure = (
                        f"{result['objects_per_s']:,} obj/s"
                        if name == "initial"
                        else f"{result['incremental_ms']} ms"
                    )
                    cells.append(
                        f"{side} {figure} @ cal {result['calibration']}, "
                        f"cpu {result['cpu_share']:.0%}"
                    )
                print(f"  round {round_number + 1} {key:<12} " + " | ".join(cells), flush=True)

    report(results, labels, rounds, initial, sizes, time.perf_counter() - started)


def report(
    results: dict[tuple[str, str, int], dict[str, Any]],
    labels: dict[str, str],
    rounds: int,
    initial: int,
    sizes: list[int],
    wall: float,
) -> None:
    def values(key: str, side: str, field: str) -> list[float]:
        return [float(results[(key, side, r)][field]) for r in range(rounds)]

    def pairs(key: str, field: str) -> list[float]:
        return [
            results[(key, "after", r)][field] / results[(key, "before", r)][field]
            for r in range(rounds)
        ]

    print()
    print(f"before = {labels['before']}")
    print(f"after  = {labels['after']}")
    print(
        f"{rounds} rounds; figures are median (min{DASH}max) over the rounds; ratios are "
        "after ÷ before (objects/s: below 1 is slower; ms: above 1 is slower)"
    )
    print()
    print(
        f"| scenario | before | after | ratio of medians | per-pair ratio, median (min{DASH}max) |"
    )
    print("|---|---|---|---|---|")
    rate = {side: values("initial", side, "objects_per_s") for side in ("before", "after")}
    cal = {side: values("initial", side, "calibration") for side in ("before", "after")}
    norm = {
        side: [r / c for r, c in zip(rate[side], cal[side], strict=True)]
        for side in ("before", "after")
    }
    rate_pairs = pairs("initial", "objects_per_s")
    norm_pairs = [
        n_after / n_before for n_after, n_before in zip(norm["after"], norm["before"], strict=True)
    ]
    print(
        f"| initial cycle, {initial:,} users, objects/s | {spread(rate['before'])} | "
        f"{spread(rate['after'])} | "
        f"{statistics.median(rate['after']) / statistics.median(rate['before']):.3f} | "
        f"{spread(rate_pairs, '{:.3f}')} |"
    )
    print(
        f"| same, objects/s per M calibration loops/s | {spread(norm['before'])} | "
        f"{spread(norm['after'])} | "
        f"{statistics.median(norm['after']) / statistics.median(norm['before']):.3f} | "
        f"{spread(norm_pairs, '{:.3f}')} |"
    )
    print(
        f"| calibration around the initial runs, M loops/s | {spread(cal['before'], '{:.1f}')} "
        f"| {spread(cal['after'], '{:.1f}')} | | |"
    )
    inc_medians: dict[str, dict[int, float]] = {"before": {}, "after": {}}
    for size in sizes:
        key = f"inc {size:,}"
        ms = {side: values(key, side, "incremental_ms") for side in ("before", "after")}
        for side, figures in ms.items():
            inc_medians[side][size] = statistics.median(figures)
        print(
            f"| incremental cycle, {CHANGES} changes, {size:,} objects, ms | "
            f"{spread(ms['before'], '{:.1f}')} | {spread(ms['after'], '{:.1f}')} | "
            f"{inc_medians['after'][size] / inc_medians['before'][size]:.3f} | "
            f"{spread(pairs(key, 'incremental_ms'), '{:.3f}')} |"
        )
    inc_cal = {
        side: [c for size in sizes for c in values(f"inc {size:,}", side, "calibration")]
        for side in ("before", "after")
    }
    print(
        f"| calibration around the incremental runs, M loops/s | "
        f"{spread(inc_cal['before'], '{:.1f}')} | {spread(inc_cal['after'], '{:.1f}')} | | |"
    )
    smallest = sizes[0]
    for size in sizes[1:]:
        growth = {
            side: inc_medians[side][size] / inc_medians[side][smallest]
            for side in ("before", "after")
        }
        print(
            f"| incremental {size:,} ÷ {smallest:,} objects (flatness) | "
            f"{growth['before']:.2f}{TIMES} | {growth['after']:.2f}{TIMES} | | |"
        )
    print()

    cost = 1 - statistics.median(rate_pairs)
    verdict = "within" if cost <= WRITE_AHEAD_LIMIT else "OVER"
    print(
        f"initial-cycle cost after vs before: {cost:+.1%} by the per-pair median "
        f"({1 - statistics.median(rate['after']) / statistics.median(rate['before']):+.1%} "
        f"by the medians, {1 - statistics.median(norm_pairs):+.1%} calibration-normalised); "
        f"limit {WRITE_AHEAD_LIMIT:.0%}: {verdict}"
    )
    shared = [
        f"round {r + 1} {key} {side} ({result['cpu_share']:.0%})"
        for (key, side, r), result in results.items()
        if result["cpu_share"] < CPU_SHARE
    ]
    if shared:
        print(
            f"WARNING: {len(shared)} of {len(results)} runs got less than {CPU_SHARE:.0%} of a "
            f"core (another process competed for the CPU): {', '.join(shared)}; their "
            f"figures are not comparable: rerun on a quiet machine"
        )
    all_cal = cal["before"] + cal["after"] + inc_cal["before"] + inc_cal["after"]
    if max(all_cal) / min(all_cal) > 1.15:
        print(
            f"note: the host changed phase during the run (calibration {min(all_cal):.1f}{DASH}"
            f"{max(all_cal):.1f}); trust the per-pair ratios over the medians"
        )
    print(
        f"wall time {wall:.0f} s; load average {load()} at the end (other processes on "
        f"these {os.cpu_count()} cores disturb the figures)"
    )


if __name__ == "__main__":
    main()
