"""The bundled demo before and after the faithful-by-default change (issue 8), in one run.

Trains one config three times on the bundled WordNet data and reports the zero-shot and trained metrics of
each. The config is the demo's as it was when the README's before/after table was measured (PRIME + NGAME,
4 epochs); it is written here, so later changes to the demo's own size do not change this benchmark:

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


CONFIG = """
model: {name_or_path: sentence-transformers/all-MiniLM-L6-v2, kind: encoder, pooling: mean}
data: {max_length: 32}
prototypes: {lpn_ffn: 512}
mining: {cluster_size: 8, double_at: [], start_epoch: 0, update_every: 1}
loss: {aggressive: true}
train: {epochs: 4, batch_size: 128, lr: 1.0e-4, warmup_steps: 20, precision: auto, sampling: inverse_propensity,
        eval_every: 1, checkpoint_every: 1, log_every: 5, device: cpu}
eval: {A: 0.55, B: 1.5, k: 5, topk: 100, encode_batch_size: 256}
"""


def run(quick: bool = False) -> dict:
    import torch

    from vixml.config import load_config
    from vixml.data import prepare_dataset
    from vixml.data.subset import first_queries as _subset
    from vixml.training import train

    torch.manual_seed(0)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        raw = Path(str(resources.files("vixml") / "resources" / "demo" / "wordnet-hypernyms"))
        if quick:
            raw = _subset(raw, Path(tmp) / "raw", {"trn": 800, "tst": 400})
        config = Path(tmp) / "config.yaml"
        config.write_text(CONFIG)
        prepare_dataset(raw, data, overwrite=True)
        for name, overrides in VARIANTS.items():
            extra = ["train.epochs=2"] if quick else []
            cfg = load_config(config, [*overrides, *extra])
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
