"""``vixml doctor``: what this machine offers vixml, and what the search chose to run on it."""

from __future__ import annotations

import typer

from vixml.cli.output import console, emit_json

__all__ = ["doctor"]


def doctor(
    dim: int = typer.Option(384, "--dim", min=1, help="Embedding width the search choice is shown for."),
    gemm: bool = typer.Option(False, "--gemm", help="Also measure the GEMM ceilings (fp32 per backend, bf16, int8)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object and nothing else."),
) -> None:
    """Show the CPU (flags, native bf16 and int8), threads, libraries, and the search backend chosen here.

    The search's backend is measured once per machine (a few seconds) and cached; this shows the cached
    choice or measures it now, with every backend's queries per second.
    """
    report = _report(dim, gemm)
    if as_json:
        emit_json(report)
        return
    from rich.table import Table

    table = Table(title="vixml doctor", show_header=False)
    table.add_column("")
    table.add_column("")
    for name, value in _rows(report):
        table.add_row(name, value)
    console.print(table)


def _report(dim: int, gemm: bool) -> dict:
    import numpy as np
    import torch

    from vixml.devices import cpu_features, native_bf16
    from vixml.search import gemm as backends

    cpu = cpu_features()
    chosen = backends.choice(dim)
    report = {
        "cpu": cpu.as_dict(),
        "native_bf16": native_bf16("cpu"),
        "native_int8": cpu.vnni or cpu.amx_int8,
        "threads": {"torch": torch.get_num_threads(), "blas": _blas_threads()},
        "libraries": {"torch": torch.__version__, "numpy": np.__version__, **_optional_versions()},
        "torch_onednn": bool(torch.backends.mkldnn.is_available()),
        "torch_mkl": bool(torch.backends.mkl.is_available()),
        "search": {
            "dim": dim,
            "batch": chosen.batch,
            "small": chosen.small,
            "queries_per_s": chosen.measured,
            "source": chosen.source,
            "cache": str(backends.cache_path()),
        },
    }
    if gemm:
        report["gemm_gflops"] = backends.ceilings(k=dim)
    return report


def _blas_threads() -> dict:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    return {f"{i['internal_api']} {i.get('version')}": i["num_threads"] for i in threadpool_info()}


def _optional_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("faiss-cpu", "hnswlib", "omikuji", "onnxruntime", "transformers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def _rows(report: dict) -> list[tuple[str, str]]:
    cpu, search = report["cpu"], report["search"]
    rows = [
        ("CPU", cpu["model"]),
        ("instruction sets", ", ".join(cpu["flags"]) or "no AVX2"),
        ("native bf16", "yes" if report["native_bf16"] else "no (emulated: fp32 is used)"),
        ("native int8 dot products", "yes (VNNI/AMX)" if report["native_int8"] else "no"),
        ("torch kernels", cpu["torch_kernels"] + (f" (capped: {', '.join(cpu['limits'])})" if cpu["limits"] else "")),
        (
            "threads",
            f"torch {report['threads']['torch']}; "
            + ", ".join(f"{k} {v}" for k, v in report["threads"]["blas"].items()),
        ),
        ("libraries", ", ".join(f"{k} {v}" for k, v in report["libraries"].items())),
        ("search backend", f"{search['batch']} for batches, {search['small']} for few queries ({search['source']})"),
    ]
    for shape, rates in search["queries_per_s"].items():
        rows.append((f"  measured ({shape})", ", ".join(f"{b} {q:,.0f} q/s" for b, q in rates.items())))
    if "gemm_gflops" in report:
        rows.append(("GEMM GFLOP/s", ", ".join(f"{k} {v:,.0f}" for k, v in report["gemm_gflops"].items())))
    return rows
