"""Model cards: the ``README.md`` of a run folder and of an export, with Hugging Face model-card metadata.

The YAML front matter (``library_name: vixml``, tags, base model, dataset, metrics and a ``model-index`` of
the final test metrics) is what the Hub reads; the body says what a user needs: the metrics and their
protocol, the data shape, the recipe and where it departs from the paper, hardware and time, and how to load
and predict. A folder is pushed with ``huggingface-cli upload ORG/NAME RUN_OR_EXPORT .`` and loaded again by
its hub id wherever vixml takes a run (``Predictor.load("ORG/NAME")``, ``vixml predict ORG/NAME ...``).
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vixml.run_folder import RunState

__all__ = ["card_front_matter", "run_card_sections", "export_card", "strip_front_matter"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SHOWN = ("P@1", "P@3", "P@5", "nDCG@5", "PSP@1", "PSP@5", "R@10", "R@100")


def card_front_matter(config, final: dict | None, dataset: str | None, extra_tags: tuple[str, ...] = ()) -> str:
    """The ``---``-fenced YAML block of a model card (``config``: the run's RunConfig)."""
    import yaml

    tags = ["vixml", "extreme-multi-label-classification", "dual-encoder", "sentence-embeddings"]
    if config.prototypes is not None:
        tags.append("prime")
    if config.images is not None:
        tags.append("multimodal")
    if config.sparse is not None:
        tags.append("hybrid-sparse-dense")
    meta: dict[str, Any] = {"library_name": "vixml", "tags": [*tags, *extra_tags]}
    base = str(config.model.name_or_path)
    if _HUB_ID.match(base) and not Path(base).exists():
        meta["base_model"] = base
    if dataset:
        meta["datasets"] = [dataset]
    meta["metrics"] = ["precision@k", "ndcg@k", "psp@k", "recall@k"]
    if final:
        results = [
            {"type": k.lower(), "name": k, "value": round(100 * float(final[k]), 2)} for k in _SHOWN if k in final
        ]
        meta["model-index"] = [
            {
                "name": Path(base).name or base,
                "results": [
                    {
                        "task": {"type": "extreme-multi-label-classification"},
                        "dataset": {"name": dataset or "unknown", "type": dataset or "unknown", "split": "test"},
                        "metrics": results,
                    }
                ],
            }
        ]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def run_card_sections(config, *, data_shape: str, hardware: str, final: dict | None) -> list[str]:
    """The body sections every card shares: protocol, recipe and deviations, hardware, loading."""
    ev = config.eval
    lines = [
        "## Protocol",
        "",
        f"Test metrics in % over the test split: P@k, nDCG@k, PSP@k (propensity-scored, A={ev.A}, "
        f"B={ev.B}), R@k and MRR of the top-{ev.topk} predictions, "
        + (
            "with the dataset's filter file applied before the cut (`eval.use_filter`)."
            if ev.use_filter
            else "without a filter file."
        )  # fmt: skip
        + (" A hybrid run's final metrics are the fused ones." if config.sparse is not None else ""),
        "",
        f"Data: {data_shape}.",
        "",
        "## Recipe",
        "",
        f"Backbone `{config.model.name_or_path}` ({config.model.kind}, {config.model.pooling} pooling"
        + (", L2-normalised" if config.model.normalize else "")
        + (f", LoRA r={config.model.lora.r}" if config.model.lora is not None else "")
        + f"), query length {config.data.max_length} tokens; {config.train.epochs} epochs"
        + (f" capped at {config.train.max_steps} steps" if getattr(config.train, "max_steps", None) else "")
        + f", batch {config.train.batch_size}, lr {config.train.lr}, loss `{config.loss.name}`"
        + (", PRIME label prototypes" if config.prototypes is not None else "")
        + (f", images fused ({config.images.num_images} per item)" if config.images is not None else "")
        + (", a sparse companion fused with the dense scores" if config.sparse is not None else "")
        + ". The whole configuration is `config.yaml`.",
        "",
        "Deviations from the paper (ViXML, docs/method.md): " + _deviations(config),
        "",
        f"Hardware and time: {hardware}.",
        "",
    ]
    return lines


def _deviations(config) -> str:
    found = []
    if config.model.image_positions != "fixed" or config.model.imageless_caption != "keep":
        found.append("image layout (`model.image_positions` / `model.imageless_caption`)")
    if config.sparse is not None:
        found.append("the sparse companion (not in the paper)")
    if config.prototypes is not None and config.prototypes.lpn_inputs != "raw":
        found.append(f"PRIME's LPN reads {config.prototypes.lpn_inputs} inputs")
    if getattr(config.train, "max_steps", None):
        found.append(f"training capped at {config.train.max_steps} steps")
    return (", ".join(found) + ".") if found else "none in the settings (see the README's Deviations section)."


def strip_front_matter(text: str) -> str:
    """A card's body without its YAML block (cards written before they had one are returned as they are)."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end >= 0:
            return text[end + 5 :].lstrip("\n")
    return text


def export_card(run, manifest: dict) -> str:
    """The card of an export of ``run`` (a RunFolder): the run's card with the export's metadata and usage."""
    config = run.load_config()
    metrics = _read_json(run.metrics)
    final = metrics.get("final")
    dataset = Path(run.read_state().data_path or "").name or None
    to = manifest["to"]
    tags = ("onnx",) if to == "onnx" else ("sentence-transformers", "sentence-similarity")
    if manifest.get("precision") == "int8":
        tags = (*tags, "int8")
    front = card_front_matter(config, final, dataset, tags)
    body = strip_front_matter(run.readme.read_text(encoding="utf-8")) if run.readme.is_file() else ""
    usage = _onnx_usage(manifest) if to == "onnx" else _st_usage(manifest)
    return front + "\n".join(usage) + "\n\n" + body


def _onnx_usage(manifest: dict) -> list[str]:
    return [
        f"# vixml export (ONNX {manifest['precision']}) of a trained run",
        "",
        "The query encoder as one ONNX graph (`query_encoder.onnx`: `input_ids` and `attention_mask`"
        + (" and the image embeddings `images` with their `image_mask`" if manifest.get("query_images") else "")
        + " in, the pooled, L2-normalised `query_embedding` out), the tokenizer (`tokenizer/`), the label "
        f"embeddings searched (`label_embeddings.npy`, {manifest.get('label_dtype', 'fp32')}), the label texts and "
        "overlay, the sparse companion and `fusion.json` where the run has them, `config.yaml`, `metrics.json`. "
        f"Checked against torch at export: largest difference {manifest.get('max_abs_difference_fp32', 0):.1e}"
        + (
            f" (fp32 graph), {manifest['max_abs_difference_int8']:.1e} after int8 quantisation"
            if "max_abs_difference_int8" in manifest
            else ""
        )  # fmt: skip
        + ".",
        "",
        "Serve it without torch (`pip install 'vixml[serve-onnx]'`: onnxruntime, tokenizers, numpy):",
        "",
        "```",
        "vixml predict EXPORT --texts queries.txt --out predictions.jsonl",
        "vixml serve EXPORT",
        "python -c \"from vixml.inference import Predictor; print(Predictor.load('EXPORT').predict(['a query']))\"",
        "```",
        "",
        "Push to the Hugging Face Hub with `huggingface-cli upload ORG/NAME EXPORT .`; every command above takes "
        "`ORG/NAME` in place of the folder (offline: from the local cache).",
        "",
    ]


def _st_usage(manifest: dict) -> list[str]:
    return [
        "# vixml export (sentence-transformers) of a trained run",
        "",
        "The query encoder as a sentence-transformers model (Transformer, Pooling, Normalize: the run's query "
        "embeddings), the label embeddings it was trained to match (`label_embeddings.npy`, float32, row i = "
        "label i) and their texts (`label_texts.txt`, line i = label i). Search them by inner product:",
        "",
        "```python",
        "import numpy as np",
        "from sentence_transformers import SentenceTransformer",
        "model = SentenceTransformer('EXPORT')  # or 'ORG/NAME' once pushed",
        "labels = np.load('EXPORT/label_embeddings.npy')",
        "texts = open('EXPORT/label_texts.txt', encoding='utf-8').read().splitlines()",
        "scores = model.encode(['a query']) @ labels.T",
        "print([texts[i] for i in np.argsort(-scores[0])[:10]])",
        "```",
        "",
        "The run's label overlay and sparse companion are not part of this folder (use `--to onnx` for them).",
        "",
    ]


def hardware_line(state: RunState) -> str:
    """The CPU/GPU and wall time of a run's ``run.json``."""
    machine = f"{platform.machine()} {platform.processor() or ''}".strip()
    return f"{machine}, {state.seconds / 60:.1f} min, {state.precision.get('value', '?')}"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
