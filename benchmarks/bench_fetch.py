"""Image ingestion: thumbnail throughput, concurrent fetch rate, and the bookkeeping cost at catalogue scale.

Usage: ``python benchmarks/bench_fetch.py [--quick]`` (prints the figures as JSON).

Measures (medians of 3 repeats, 5 interleaved ones for the thumbnails; wall-clock):
- ``thumbnail_line`` (decode with JPEG draft scaling, LANCZOS to 384, white padding, JPEG q90, base64) on
  a 1600x1200 photo-like JPEG, against the peer a script would write: full decode, ``Image.thumbnail``
  (LANCZOS), paste on white, JPEG q90, base64;
- ``fetch_images`` end to end from a local HTTP server that waits 20 ms before each answer (a nearby
  CDN's round trip), with 1 worker and with 16: images/s and the concurrency ratio;
- the index work of a fetch that does not scale with the network: hashing and planning 1M references
  (``FetchPlan.of`` + ``wanted``) and reading back a 200k-entry journal on resume.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from timing import timed

HERE = Path(__file__).resolve().parent

REPEATS = 3


def _photo(width: int, height: int) -> bytes:
    """A JPEG with smooth gradients and mild noise (compresses like a product photo, not like a flat colour)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    rgb += rng.normal(0, 8, rgb.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _naive_line(data: bytes, size: int = 384) -> bytes:
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=90)
    return base64.b64encode(out.getvalue())


def run(quick: bool = False) -> dict:
    import numpy as np

    from vixml.testing.image_server import ImageServer, Route
    from vixml.vision.download import DownloadPolicy
    from vixml.vision.fetch import FetchOptions, fetch_images
    from vixml.vision.fetch_journal import FetchJournal
    from vixml.vision.fetch_plan import FetchPlan
    from vixml.vision.image_refs import ImageRefs
    from vixml.vision.thumbnail import thumbnail_line

    out: dict = {}
    photo = _photo(1600, 1200)
    n_thumbs = 10 if quick else 40
    _naive_line(photo), thumbnail_line(photo)  # warm-up
    ours_runs, naive_runs = [], []
    for _ in range(2 * REPEATS - 1):  # interleaved, so that a noisy neighbour slows both alike
        ours_runs.append(timed(lambda: [thumbnail_line(photo) for _ in range(n_thumbs)], 1).wall / n_thumbs)
        naive_runs.append(timed(lambda: [_naive_line(photo) for _ in range(n_thumbs)], 1).wall / n_thumbs)
    ours, naive = statistics.median(ours_runs), statistics.median(naive_runs)
    out.update(
        thumbnail_ms=round(ours * 1e3, 2),
        thumbnail_naive_ms=round(naive * 1e3, 2),
        thumbnail_speedup_vs_naive=round(naive / ours, 2),
    )

    n_images = 48 if quick else 240
    body = _photo(800, 600)
    routes = {f"/{k}.jpg": Route(body, content_type="image/jpeg") for k in range(n_images)}
    policy = DownloadPolicy(timeout=10, retries=0)
    with ImageServer(routes, lifetime=600, delay_all=0.02) as server, tempfile.TemporaryDirectory() as tmp:
        refs = ImageRefs.from_lists(
            [str(k) for k in range(n_images)], [[server.url(f"/{k}.jpg")] for k in range(n_images)]
        )
        rates = {}
        for workers in (1, 16):
            runs = []
            for r in range(REPEATS):
                target = Path(tmp) / f"w{workers}_{r}"
                result = fetch_images(
                    target, "trn", refs, FetchOptions(num_images=1, workers=workers, download=policy)
                )
                runs.append(n_images / result.seconds)
            rates[workers] = statistics.median(runs)
        out.update(
            fetch_images=n_images,
            fetch_img_per_s_1_worker=round(rates[1], 1),
            fetch_img_per_s_16_workers=round(rates[16], 1),
            fetch_speedup_16_vs_1=round(rates[16] / rates[1], 2),
        )

    n_refs = 100_000 if quick else 1_000_000
    urls = [f"https://images.example.com/p/{k:09d}.jpg" for k in range(n_refs)]
    big = ImageRefs(
        [str(i) for i in range(n_refs // 3 + 1)],
        np.minimum(np.arange(0, n_refs // 3 + 2) * 3, n_refs).astype(np.int64),
        urls,
    )
    start = time.perf_counter()
    plan = FetchPlan.of(big)
    wanted = plan.wanted(np.zeros(len(plan.urls), np.int8), 3)
    out.update(plan_refs=n_refs, plan_s=round(time.perf_counter() - start, 3), plan_wanted=int(len(wanted)))

    n_entries = 20_000 if quick else 200_000
    with tempfile.TemporaryDirectory() as tmp:
        journal = FetchJournal(Path(tmp) / "w", {"size": 384})
        line = b"A" * 100
        for k in range(n_entries):
            journal.record_ok(urls[k], line)
        journal.close()
        start = time.perf_counter()
        reopened = FetchJournal(Path(tmp) / "w", {"size": 384})
        states = reopened.states(urls[:n_entries])
        reopened.close()
        out.update(
            resume_entries=n_entries,
            resume_s=round(time.perf_counter() - start, 3),
            resume_ok=int((states.status == 1).sum()),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
