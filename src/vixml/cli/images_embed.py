"""``vixml images embed``: a dataset folder's image banks -> image-embedding files (resumable)."""

from __future__ import annotations

from pathlib import Path

import typer

from vixml.cli.output import console, emit_json, err_console
from vixml.devices import PRECISIONS

__all__ = ["embed"]

_DEFAULT_MODEL = "google/siglip2-so400m-patch14-384"  # = vixml.vision.models.DEFAULT_VISION_MODEL (kept light)
_SPLITS = ("trn", "tst", "lbl", "all")
_PRECISIONS = PRECISIONS


def embed(
    directory: Path = typer.Argument(
        ..., help="Dataset folder with {train,test,labels}_imgs_<size>_<N>.bin banks and their maps."
    ),
    model: str = typer.Option(_DEFAULT_MODEL, "--model", help="Hugging Face vision model: hub name or local folder."),
    split: str = typer.Option("all", "--split", help="trn | tst | lbl | all (every split with a bank)."),
    num_images: int | None = typer.Option(
        None, "--num-images", min=1, help="Use the banks of this N (needed only when several N are present)."
    ),
    image_size: int | None = typer.Option(
        None, "--image-size", min=1, help="Use the banks of this image size (only when several are present)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: DIR); the maps are copied there."),
    tag: str | None = typer.Option(
        None, "--tag", help="Model tag in the file names, e.g. siglip2 (default: from the model's name)."
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Images per forward pass."),
    workers: int = typer.Option(2, "--workers", min=0, help="Processes decoding and resizing images (0: inline)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="auto (bf16 where native: CUDA with bf16, CPUs with AVX512_BF16/AMX; else fp16 on GPU, fp32 on CPU) "
        "| fp32 | fp16 | bf16.",
    ),
    chunk_rows: int = typer.Option(
        8192, "--chunk-rows", min=1, help="Rows between progress commits (a rerun resumes from the last one)."
    ),
    bad_images: str = typer.Option(
        "error", "--bad-images", help="error: stop at undecodable lines | zero: embed them as zero vectors."
    ),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Allow converting a released pickled map (*_map.npy) once; it can run code."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recompute embedding files that already exist."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else."),
) -> None:
    """Embed every image of the banks with a frozen vision model: one pooled vector per image.

    Writes {trn,tst,lbl}_embs_imgs_<N>_<D>_<tag>.npy (float32, row r = bank line r) beside the maps.
    An interrupted run continues where it stopped when rerun with the same bank and model.
    """
    for value, allowed, hint in (
        (split, _SPLITS, "--split"),
        (precision, _PRECISIONS, "--precision"),
        (bad_images, ("error", "zero"), "--bad-images"),
    ):
        if value not in allowed:
            raise typer.BadParameter(f"expected one of {', '.join(allowed)}, got {value!r}", param_hint=hint)
    from vixml.vision.embed_dataset import embed_dataset

    results = embed_dataset(
        directory,
        model,
        splits=split,
        num_images=num_images,
        image_size=image_size,
        out_dir=out,
        tag=tag,
        batch_size=batch_size,
        workers=workers,
        device=device,
        precision=precision,
        chunk_rows=chunk_rows,
        bad_images=bad_images,  # type: ignore[arg-type]
        trust_pickle=trust_pickle,
        overwrite=overwrite,
        progress=err_console.is_terminal,
    )
    records = [
        {
            "split": r.split,
            "embeddings": str(r.embeddings),
            "map": str(r.map),
            "n_images": r.n_images,
            "dim": r.dim,
            "num_images": r.num_images,
            "tag": r.tag,
            "model_type": r.model_type,
            "feature": r.feature,
            "resumed_from": r.resumed_from,
            "bad_rows": list(r.bad_rows),
            "skipped": r.skipped,
            "seconds": round(r.seconds, 3),
            "images_per_s": round(r.images_per_s, 2),
        }
        for r in results
    ]
    if as_json:
        emit_json({"model": model, "splits": records})
        return
    for rec in records:
        state = "kept (exists)" if rec["skipped"] else f"{rec['images_per_s']:.1f} images/s"
        resumed = f", resumed at row {rec['resumed_from']}" if rec["resumed_from"] else ""
        bad = f", {len(rec['bad_rows'])} bad image(s) as zeros" if rec["bad_rows"] else ""
        console.print(f"{rec['split']}: {rec['embeddings']} ({rec['n_images']} x {rec['dim']}; {state}{resumed}{bad})")
