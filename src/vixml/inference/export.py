"""Ship a trained run: its query encoder as one ONNX graph (fp32 or int8), or as a sentence-transformers folder.

An ONNX export (``vixml export RUN --to onnx --out DIR``) is a run that serves without torch: the query side
of the dual encoder (token ids and mask in, the pooled, normalised embedding out, exactly as the run computes
it; for a run that fuses images on the query side, the image embeddings and their mask are inputs too and
the projection and layout are inside the graph), the tokenizer files, the label embeddings searched (PRIME's
prototypes already in them), the label texts, the label overlay, the sparse companion and ``fusion.json``,
the run's config and metrics, and a model card. :class:`~vixml.inference.Predictor` loads it with
onnxruntime (:mod:`vixml.inference.onnx_encoder`). Decoder backbones (LoRA or not) are refused: their
prompt layout and causal masks are out of reach of the TorchScript exporter here, and untested.

The folder is built beside its place and renamed into it (``export.json`` written last inside it), under a
lock; the graph is checked against torch on texts of other lengths and batch sizes before it is published.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from vixml import __version__
from vixml.errors import ConfigError, DataError, Problem
from vixml.optional import require
from vixml.run_folder import EXPORT_FORMAT, EXPORT_VERSION, ExportFolder, RunFolder, resolve_run

__all__ = ["export_onnx", "export_sentence_transformers", "LABEL_DTYPES", "CHECK_TOLERANCE"]

logger = logging.getLogger(__name__)

LABEL_DTYPES = ("fp32", "fp16")
CHECK_TOLERANCE = 1e-4  # largest |ONNX fp32 - torch fp32| of an embedding coordinate that is accepted
OPSET = 17
_CHECK_TEXTS = ["a", "two words", "a somewhat longer query text with more words in it than the others have"]


def export_onnx(run_dir, out, *, int8: bool = False, label_dtype: str = "fp32") -> Path:
    """Write the ONNX export of the run at ``run_dir`` (a folder or a hub id) to ``out``; returns ``out``.

    Args:
        int8: quantise the graph's weights to int8 (onnxruntime's dynamic quantisation: weights int8,
            activations quantised per batch); the check against torch is then reported, not enforced.
        label_dtype: ``fp32`` or ``fp16`` label embeddings on disk (searched in fp32 either way).

    Raises:
        ConfigError: a decoder backbone, or an unknown ``label_dtype``.
        DataError: an unfinished run, or a graph whose fp32 embeddings differ from torch's.
    """
    if label_dtype not in LABEL_DTYPES:
        raise ConfigError(f"--labels must be one of {', '.join(LABEL_DTYPES)}, got {label_dtype!r}")
    require("onnx", "export")
    run, config, model = _load_run(run_dir)
    if model.backbone.kind == "decoder":
        raise ConfigError(
            f"{run.path}: decoder backbones ({model.backbone.model_type}"
            + (", LoRA" if model.backbone.has_lora else "")
            + ") are not exported to ONNX: serve the run folder itself (`vixml serve RUN`)"
        )
    folder = ExportFolder(out)
    with folder.export_lock():
        built = folder.build_beside()
        try:
            manifest = _write_onnx(run, config, model, built, int8=int8)
            _copy_label_side(run, built, label_dtype)
            manifest["label_dtype"] = label_dtype
            _write_card(run, built, manifest)
            _write_manifest(built, manifest)
            folder.publish(built)
        except BaseException:
            shutil.rmtree(built, ignore_errors=True)
            raise
    logger.info("exported %s to %s (%s)", run.path, folder.path, manifest["precision"])
    return folder.path


def _load_run(run_dir):
    from vixml.models import load_dual_encoder

    run = RunFolder(resolve_run(run_dir))
    if ExportFolder.is_export(run.path):
        raise DataError(Problem(str(run.path), "is an export already: export the run folder it came from"))
    run.require_finished()
    config = run.load_config()
    return run, config, load_dual_encoder(run.model_dir(), config, device="cpu")


class _QuerySide:
    """The query side of a dual encoder as a module with plain tensor inputs, for the exporter's trace."""

    @staticmethod
    def build(model, images: bool):
        import torch

        class QueryEncoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, *image_inputs):
                return self.model.encode_queries(input_ids, attention_mask, *image_inputs)

        return QueryEncoder().eval()


def _write_onnx(run: RunFolder, config, model, built: Path, *, int8: bool) -> dict:
    """The graph (checked against torch), the tokenizer and the manifest's description of both."""
    import torch

    from vixml.inference.onnx_encoder import TokenizerSettings

    backbone = model.backbone
    folder = ExportFolder(built)
    backbone.tokenizer.save_pretrained(folder.tokenizer)
    if not folder.tokenizer_file.is_file():
        raise ConfigError(f"{run.path}: the run's tokenizer has no fast (tokenizers) version to export")
    max_length = config.data.max_length
    images = model.uses_images("query")
    num_images = config.images.num_images if images else 0
    vision_dim = model.image_projection.vision_dim if model.image_projection is not None else None

    def inputs(texts, with_images):
        batch = backbone.tokenize(texts, max_length)
        args = [batch["input_ids"], batch["attention_mask"]]
        if images:
            gen = torch.Generator().manual_seed(len(texts))
            emb = torch.randn(len(texts), num_images, vision_dim, generator=gen)
            mask = torch.zeros(len(texts), num_images, dtype=torch.bool)
            if with_images:
                mask[::2] = True  # every other row with its images, the others with masked slots
            args += [emb, mask]
        return tuple(args)

    module = _QuerySide.build(model, images)
    check = [inputs(_CHECK_TEXTS, True), inputs(_CHECK_TEXTS[1:2], False)]
    with torch.inference_mode():
        expected = [module(*a).float().numpy() for a in check]
    names = ["input_ids", "attention_mask"] + (["images", "image_mask"] if images else [])
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    axes["query_embedding"] = {0: "batch"}
    if images:
        axes.update({"images": {0: "batch"}, "image_mask": {0: "batch"}})
    graph = folder.query_encoder
    started = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings on Python-side shape checks: the check below rules
        torch.onnx.export(
            module,
            inputs(["first text", "the second text here"], True),
            str(graph),
            input_names=names,
            output_names=["query_embedding"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    module.eval()  # the exporter may leave the module in training mode
    seconds = time.perf_counter() - started
    difference = _largest_difference(graph, names, check, expected)
    if difference > CHECK_TOLERANCE:
        raise DataError(
            Problem(
                str(run.path),
                f"the ONNX graph's embeddings differ from torch's by {difference:.2e} "
                f"(tolerance {CHECK_TOLERANCE}): not exported",
            )  # fmt: skip
        )
    manifest = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "to": "onnx",
        "precision": "fp32",
        "opset": OPSET,
        "run": str(run.path),
        "vixml": __version__,
        "torch": torch.__version__,
        "embedding_dim": int(model.embedding_dim),
        "query_images": images,
        "num_images": num_images,
        "vision_dim": vision_dim if images else None,
        "inputs": names,
        "tokenizer": asdict(TokenizerSettings.of(backbone.tokenizer, max_length)),
        "max_abs_difference_fp32": difference,
        "export_seconds": round(seconds, 2),
    }
    if int8:
        manifest.update(_quantize(graph, names, check, expected))
    return manifest


def _largest_difference(graph: Path, names, check, expected) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    worst = 0.0
    for args, want in zip(check, expected, strict=True):
        feed = {name: a.numpy() for name, a in zip(names, args, strict=True)}
        got = session.run(["query_embedding"], feed)[0]
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def _quantize(graph: Path, names, check, expected) -> dict:
    """Replace the fp32 graph by its dynamic int8 quantisation; report how far it moved the embeddings."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = graph.with_suffix(".fp32.onnx")
    graph.rename(fp32)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process (shape inference) goes to the root logger; done here
    try:
        # per output channel, matrix products only (the embedding table stays fp32): measured on the demo run,
        # mean cosine to fp32 0.996 (per tensor, every op: 0.983) and a little faster
        quantize_dynamic(
            str(fp32), str(graph), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
        )
    finally:
        root.setLevel(level)
    fp32.unlink()
    difference = _largest_difference(graph, names, check, expected)
    how = "dynamic, QInt8 per channel, MatMul"
    return {"precision": "int8", "quantisation": how, "max_abs_difference_int8": difference}


def _copy_label_side(run: RunFolder, built: Path, label_dtype: str) -> None:
    """Label embeddings (in ``label_dtype``), texts, overlay, sparse companion, fusion, config, metrics."""
    from vixml.inference.overlay import LabelOverlay, embeddings_fingerprint

    folder = ExportFolder(built)
    embeddings = run.load_label_embeddings()
    np.save(folder.label_embeddings, embeddings.astype(np.float16 if label_dtype == "fp16" else np.float32))
    for name in ("config", "label_texts", "fusion", "metrics", "state"):
        source = getattr(run, name)
        if source.is_file():
            shutil.copyfile(source, getattr(folder, name))
    if run.sparse_complete():
        shutil.copytree(run.sparse, folder.sparse)
    overlay = LabelOverlay.read(run, embeddings)
    if overlay.added or overlay.hidden:  # made for the run's file: re-stamped for the export's own
        replace(overlay, fingerprint=embeddings_fingerprint(folder.label_embeddings)).write(folder)


def _write_manifest(built: Path, manifest: dict) -> None:
    manifest["exported_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    ExportFolder(built).manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _write_card(run: RunFolder, built: Path, manifest: dict) -> None:
    from vixml.reports.card import export_card

    ExportFolder(built).readme.write_text(export_card(run, manifest), encoding="utf-8")


# ---------------------------------------------------------------------------------- sentence-transformers
def export_sentence_transformers(run_dir, out) -> Path:
    """Write ``out``: a folder that ``SentenceTransformer(out)`` loads (Transformer, Pooling, Normalize as the
    run computes its query embeddings), the label embeddings and texts beside it, and a README.

    Raises:
        ConfigError: a run that fuses images on the query side, a decoder, or a linear transform after pooling
            (sentence-transformers' modules cannot say it the same way).
    """
    require("sentence_transformers", "sentence-transformers")
    run, config, model = _load_run(run_dir)
    backbone = model.backbone
    refusal = _st_refusal(model)
    if refusal:
        raise ConfigError(f"{run.path}: {refusal}; export it with --to onnx instead")
    folder = ExportFolder(out)
    with folder.export_lock():
        built = folder.build_beside()
        try:
            _write_st(backbone, config, built)
            embeddings = run.load_label_embeddings()
            np.save(ExportFolder(built).label_embeddings, embeddings.astype(np.float32))
            for name in ("config", "label_texts", "metrics", "state"):
                if getattr(run, name).is_file():
                    shutil.copyfile(getattr(run, name), getattr(ExportFolder(built), name))
            manifest = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "to": "sentence-transformers",
                        "run": str(run.path), "vixml": __version__, "embedding_dim": int(model.embedding_dim),
                        "tokenizer": {"max_length": config.data.max_length}}  # fmt: skip
            _write_card(run, built, manifest)
            _write_manifest(built, manifest)
            folder.publish(built)
        except BaseException:
            shutil.rmtree(built, ignore_errors=True)
            raise
    return folder.path


def _st_refusal(model) -> str | None:
    backbone = model.backbone
    if model.uses_images("query"):
        return "its queries are encoded with images"
    if backbone.kind == "decoder":
        return "a decoder's prompt layout has no sentence-transformers module"
    if backbone.transform is not None:
        return "a linear transform after pooling"
    if backbone.pooling == "last":
        return "last-token pooling"
    return None


def _write_st(backbone, config, built: Path) -> None:
    """The sentence-transformers modules: Transformer (the merged weights), Pooling, Normalize when the run has it."""
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers >= 6 moved its modules
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # pragma: no cover - older releases
        from sentence_transformers import models

    weights = built / "_hf"
    backbone.export_merged(weights)
    transformer = models.Transformer(str(weights), max_seq_length=config.data.max_length)
    modules = [transformer, models.Pooling(backbone.embedding_dim, pooling_mode=backbone.pooling)]
    if backbone.normalize:
        modules.append(models.Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(built))
    shutil.rmtree(weights)
