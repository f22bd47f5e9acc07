"""The bundled demo before and after the faithful-by-default change (issue 8), in one run.

Trains the demo config (src/vixml/resources/demo/demo.yaml, its size untouched) three times on the bundled
WordNet data and reports the zero-shot and trained metrics of each:

- ``before``: the pre-issue-8 behaviour restored through the switches (hinge ties with zero gradient,
  gradient clipping at 1.0, normalised LPN inputs, text fallback for labels without queries, mask-counted
  image positions, imageless decoder rows without caption);
- ``after``: today's defaults (the reference's behaviour);
- ``after_lpn_normalized``: today's defaults with ``prototypes.lpn_inputs=normalized`` (item 7: the LPN
  reading raw vs normalised inputs).

``--quick`` (for a loaded 2-core machine) trains 2 epochs on the first 800 training and 400 test queries of
the demo data (every label kept); without it, the whole demo data for the demo's own epoch count.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

BEFORE = [
    "loss.hinge_tie=zero",
    "train.grad_clip=1.0",
    "prototypes.lpn_inputs=normalized",
    "prototypes.unseen_labels=text",
    "model.image_positions=mask",
    "model.imageless_caption=drop",
]
VARIANTS = {"after": [], "before": BEFORE, "after_lpn_normalized": ["prototypes.lpn_inputs=normalized"]}
KEYS = ("P@1", "P@5", "PSP@1", "nDCG@5")


def _demo(name: str) -> Path:
    return Path(str(resources.files("vixml") / "resources" / "demo" / name))


def _subset(source: Path, target: Path, n_train: int, n_test: int) -> Path:
    """A copy of the raw demo folder keeping the first training / test rows (labels and texts untouched)."""
    import shutil

    target.mkdir(parents=True)
    for f in source.iterdir():
        shutil.copy(f, target / f.name)
    for split, n in (("trn", n_train), ("tst", n_test)):
        rows = (source / f"{split}_X_Y.txt").read_text().splitlines()
        labels = rows[0].split()[1]
        (target / f"{split}_X_Y.txt").write_text("\n".join([f"{n} {labels}", *rows[1 : n + 1]]) + "\n")
        texts = (source / f"{split}.raw.txt").read_text().splitlines()[:n]
        (target / f"{split}.raw.txt").write_text("\n".join(texts) + "\n")
        name = "filter_labels_train.txt" if split == "trn" else "filter_labels_test.txt"
        pairs = [line for line in (source / name).read_text().splitlines() if line and int(line.split()[0]) < n]
        (target / name).write_text("\n".join(pairs) + ("\n" if pairs else ""))
    return target


def run(quick: bool = False) -> dict:
    import torch

    from vixml.config import load_config
    from vixml.data import prepare_dataset
    from vixml.training import train

    torch.manual_seed(0)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        raw = _demo("wordnet-hypernyms")
        if quick:
            raw = _subset(raw, Path(tmp) / "raw", n_train=800, n_test=400)
        prepare_dataset(raw, data, overwrite=True)
        for name, overrides in VARIANTS.items():
            extra = ["train.epochs=2"] if quick else []
            cfg = load_config(_demo("demo.yaml"), [*overrides, *extra])
            start = time.perf_counter()
            run_dir = train(cfg, data, Path(tmp) / name)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            out[f"{name}_train_s"] = round(time.perf_counter() - start, 1)
            for phase in ("zero_shot", "final"):
                for key in KEYS:
                    value = (metrics.get(phase) or {}).get(key)
                    if value is not None:
                        out[f"{name}_{phase}_{key}"] = round(100 * float(value), 2)
            partial = {k: v for k, v in out.items() if k.startswith(name)}
            print(f"faithful {name}: {json.dumps(partial)}", file=sys.stderr, flush=True)  # each variant as it ends
        out["epochs"] = cfg.train.epochs
        out["train_queries"] = 800 if quick else "all (demo)"
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
