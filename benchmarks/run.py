"""Run every benchmark (``benchmarks/bench_*.py``) and write RESULTS.md and results.json beside this file.

Usage: ``python benchmarks/run.py [--quick] [--only search,metrics]``. Each module exposes
``run(quick: bool) -> dict`` of flat figures; this runner records the machine next to them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))


def machine() -> dict:
    import torch

    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", default="", help="comma-separated topics (file names without bench_)")
    args = parser.parse_args()
    topics = sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))
    if args.only:
        topics = [t for t in topics if t in args.only.split(",")]
    out_json = HERE / "results.json"
    results = json.loads(out_json.read_text()) if out_json.exists() else {}
    results["machine"] = machine()
    for topic in topics:
        print(f"== {topic}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        figures = importlib.import_module(f"bench_{topic}").run(quick=args.quick)
        figures["_wall_s"] = round(time.perf_counter() - start, 1)
        figures["_quick"] = args.quick
        figures["_date"] = results["machine"]["date"]  # topics run at different times keep their own date
        results[topic] = figures
        out_json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(json.dumps(figures, indent=2), file=sys.stderr, flush=True)
    write_markdown(results, HERE / "RESULTS.md")


def write_markdown(results: dict, path: Path) -> None:
    lines = ["# Benchmark results", "", "Written by `python benchmarks/run.py`; do not edit by hand.", ""]
    lines += ["Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()), ""]
    for topic, figures in results.items():
        if topic == "machine":
            continue
        lines += [f"## {topic}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in figures.items()]
        lines.append("")
    path.write_text("\n".join(lines))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


if __name__ == "__main__":
    main()
