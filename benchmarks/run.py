"""Run every benchmark (``benchmarks/bench_*.py``) and write RESULTS.md and results.json beside this file.

Usage: ``python benchmarks/run.py [--quick] [--only search,metrics] [--emulate-avx2]``. Each module exposes
``run(quick: bool) -> dict`` of flat figures; this runner records the machine next to them, and the CPU
(model, AVX2/AVX-512/AVX512_BF16/AMX, caps in force, whether bf16 is native) beside every topic: bf16 figures
mean nothing on a CPU that emulates bf16, where the fp32 figures are the ones to compare with the peers.

``--emulate-avx2`` re-runs the chosen topics as on an AVX2-only CPU (``ONEDNN_MAX_CPU_ISA=AVX2``,
``ATEN_CPU_CAPABILITY=avx2``, ``VIXML_NATIVE_BF16=0``) and records them as ``<topic>@AVX2``, beside the
native figures.
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


#: The environment that makes a CPU with AVX-512/AMX behave as an AVX2-only one (bf16 then emulated).
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "VIXML_NATIVE_BF16": "0"}


def machine() -> dict:
    import torch

    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_record()["_cpu"],
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def cpu_record() -> dict:
    """The CPU a figure was measured on, as the ``_cpu*`` keys stored beside every topic's figures."""
    from vixml.devices import cpu_features, native_bf16

    features = cpu_features()
    return {
        "_cpu": features.describe(),
        "_cpu_flags": ", ".join(features.flags) or "no AVX2",
        "_native_bf16": native_bf16("cpu"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", default="", help="comma-separated topics (file names without bench_)")
    parser.add_argument("--emulate-avx2", action="store_true", help="run as on an AVX2-only CPU (<topic>@AVX2)")
    args = parser.parse_args()
    if args.emulate_avx2 and any(os.environ.get(k) != v for k, v in AVX2_ONLY.items()):
        # The caps are read when torch loads its kernels: only a fresh process honours them.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ONLY})
    suffix = "@AVX2" if args.emulate_avx2 else ""
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
        figures |= cpu_record()
        results[topic + suffix] = figures
        out_json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(json.dumps(figures, indent=2), file=sys.stderr, flush=True)
    write_markdown(results, HERE / "RESULTS.md")


def write_markdown(results: dict, path: Path) -> None:
    lines = ["# Benchmark results", "", "Written by `python benchmarks/run.py`; do not edit by hand.", ""]
    machine = ", ".join(f"{k} {v}" for k, v in results["machine"].items())
    lines += [f"Machine of the latest run (each topic names its own CPU): {machine}", ""]
    for topic, figures in results.items():
        if topic == "machine":
            continue
        lines += [f"## {topic}", "", _measured_on(figures), "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in figures.items() if not k.startswith("_cpu")]
        lines.append("")
    path.write_text("\n".join(lines))


def _measured_on(figures: dict) -> str:
    """The sentence under a topic's title: on which CPU, and which figures count where bf16 is emulated."""
    cpu = figures.get("_cpu", "an unrecorded CPU")
    if figures.get("_native_bf16", True):
        return f"CPU: {cpu}. bf16 native here."
    return (
        f"CPU: {cpu}. **bf16 is emulated here**: compare the fp32 figures with the peers (an ISA cap binds "
        "torch and oneDNN only: faiss and numba still pick the CPU's widest instructions)."
    )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


if __name__ == "__main__":
    main()
