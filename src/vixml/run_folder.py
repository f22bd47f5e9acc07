"""The run folder as a type: where every file of a trained run lives, how the model is replaced, how it is read.

Training writes it, inference, serving, reports and distributed ranks read it; all of them name its files
through :class:`RunFolder`, so no layer has to import another to learn a file name. The final model is a
folder written beside its place and swapped in by renames, and a reader that finds the swap half done
takes the complete copy, so there is never a moment without a model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vixml.atomic import atomic_open, clean_stale_temps
from vixml.errors import DataError, Problem
from vixml.locking import WriteLock

if TYPE_CHECKING:
    from vixml.config import RunConfig

__all__ = [
    "RunFolder",
    "RunState",
    "ExportFolder",
    "open_run",
    "resolve_run",
    "MODEL_COMPLETE",
    "SPARSE_COMPLETE",
    "EXPORT_COMPLETE",
]

logger = logging.getLogger(__name__)

SPARSE_COMPLETE = "sparse.json"  # written last by SparseRanker.save: its presence means a complete companion
MODEL_COMPLETE = "dual_encoder.json"  # written last by DualEncoder.save: its presence means a complete model
EXPORT_COMPLETE = "export.json"  # written last into an export's temporary folder, which is then renamed
EXPORT_FORMAT = "vixml.export"
EXPORT_VERSION = 1
CHECKPOINT_POINTER = "latest"  # inside checkpoints/: the name of the newest complete checkpoint
CHECKPOINT_STATE = "state.pt"  # inside a checkpoint: written before the folder gets its final name


@dataclass
class RunState:
    """``run.json``: what a run was trained on and with, and the wall time of every segment (resumes add up).

    The JSON keys are the attribute names; keys this version does not know are kept in :attr:`extra` and
    written back. Written only through :meth:`RunFolder.write_state` (atomically, by rank 0).

    Attributes:
        data: the dataset trained on: ``{"path": ..., "fingerprint": ...}``.
        precision: ``{"value": "bf16"|..., "reason": ...}``.
        finished: the run wrote its final model, metrics and README.
        segments: one ``{"started", "seconds", "ranks", "parallel", "backend"}`` per start (a resume adds one).
        seconds: the wall time of every segment together.
        sparse_seconds: how long the sparse companion took to build (hybrid runs).
    """

    data: dict[str, Any] = field(default_factory=dict)
    precision: dict[str, Any] = field(default_factory=dict)
    finished: bool = False
    segments: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    sparse_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _started: float | None = field(default=None, repr=False, compare=False)

    @property
    def data_path(self) -> str | None:
        """The dataset folder the run was trained on, or None."""
        return self.data.get("path")

    @property
    def fingerprint(self) -> str | None:
        return self.data.get("fingerprint")

    @classmethod
    def from_json(cls, obj: Any) -> RunState:
        """The state a ``run.json`` holds; a field of the wrong type reads as its default (a foreign file)."""
        if not isinstance(obj, dict):
            return cls()
        known = {"data": dict, "precision": dict, "finished": bool, "segments": list, "seconds": (int, float)}
        kept = {k: obj[k] for k, kind in known.items() if isinstance(obj.get(k), kind)}
        sparse = obj.get("sparse_seconds")
        extra = {k: v for k, v in obj.items() if k not in known and k != "sparse_seconds"}
        return cls(**kept, sparse_seconds=sparse if isinstance(sparse, int | float) else None, extra=extra)

    def to_json(self) -> dict[str, Any]:
        out = {"data": self.data, "precision": self.precision, "finished": self.finished}
        out |= {"segments": self.segments, "seconds": self.seconds}
        if self.sparse_seconds is not None:
            out["sparse_seconds"] = self.sparse_seconds
        return out | self.extra

    def begin(self, data_path: str, fingerprint: str, precision: str, reason: str) -> None:
        """A new segment (a start or a resume) on this data and precision; its clock starts now."""
        self.data = {"path": data_path, "fingerprint": fingerprint}
        self.precision = {"value": precision, "reason": reason}
        self.finished = False
        self.segments.append({"started": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": 0.0})
        self._started = time.perf_counter()

    def stamp(self) -> RunState:
        """The running segment's wall time and the total brought up to now; returns self."""
        if self._started is not None:
            self.segments[-1]["seconds"] = round(time.perf_counter() - self._started, 1)
        self.seconds = round(sum(s["seconds"] for s in self.segments), 1)
        return self

    def end(self) -> bool:
        """Stop the segment's clock (stamped first); False when no segment was running."""
        if self._started is None:
            return False
        self.stamp()
        self._started = None
        return True


@dataclass(frozen=True)
class RunFolder:
    """The files of one run (``vixml train --out RUN``).

    Attributes are paths; nothing is read or created until a method asks.
    """

    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    # ------------------------------------------------------------------------------------------ the files
    @property
    def config(self) -> Path:
        """The run's configuration as given (YAML; derived values are recomputed, never stored)."""
        return self.path / "config.yaml"

    @property
    def state(self) -> Path:
        """``run.json``: the data it was trained on (path, fingerprint), the precision, the wall time per segment."""
        return self.path / "run.json"

    def looks_like_run(self) -> bool:
        """A run folder (its config and its state, checkpoints or model), not a dataset or another folder."""
        return self.config.is_file() and any(p.exists() for p in (self.state, self.checkpoints, self.model))

    def trained_on(self) -> str | None:
        """The dataset folder :attr:`state` records, or None."""
        return self.read_state().data_path

    def read_state(self) -> RunState:
        """The :class:`RunState` of :attr:`state` (an empty one when absent or unreadable)."""
        try:
            text = self.state.read_text(encoding="utf-8") if self.state.is_file() else "{}"
            return RunState.from_json(json.loads(text))
        except (OSError, ValueError):
            return RunState()

    def write_state(self, state: RunState) -> None:
        """Write :attr:`state` atomically (the caller is the run's one writer: rank 0, holding the lock)."""
        with atomic_open(self.state) as fh:
            json.dump(state.to_json(), fh, indent=2)
            fh.write("\n")

    @property
    def checkpoints(self) -> Path:
        """Resumable training states (their format: :mod:`vixml.training.checkpoint`); ``latest`` names the newest."""
        return self.path / "checkpoints"

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (the one ``checkpoints/latest`` names), or None when there is none."""
        pointer = self.checkpoints / CHECKPOINT_POINTER
        if not pointer.exists():
            return None
        path = self.checkpoints / pointer.read_text(encoding="utf-8").strip()
        return path if (path / CHECKPOINT_STATE).exists() else None

    @property
    def label_embeddings(self) -> Path:
        """(L, D) float32 ``.npy`` searched at inference (prototypes with PRIME)."""
        return self.path / "label_embeddings.npy"

    @property
    def label_texts(self) -> Path:
        """The labels' texts, one per line in label-id order (so that predictions can be shown as text)."""
        return self.path / "label_texts.txt"

    @property
    def label_ids(self) -> Path:
        """The labels' own ids (the catalogue's ``id`` column), one per line in row order; absent when the
        dataset had none (row numbers are the ids then)."""
        return self.path / "label_ids.txt"

    @property
    def test_ids(self) -> Path:
        """The test queries' own ids, one per line in the row order of :attr:`predictions` (when the data had them)."""
        return self.path / "test_ids.txt"

    @property
    def label_overlay(self) -> Path:
        """Labels added or hidden after training (``vixml labels add``, the server)."""
        return self.path / "labels_overlay"

    @property
    def sparse(self) -> Path:
        """The sparse companion (a folder; ``sparse.json`` in it is written last), with ``sparse`` on."""
        return self.path / "sparse"

    def sparse_complete(self) -> bool:
        return (self.sparse / SPARSE_COMPLETE).is_file()

    @property
    def fusion(self) -> Path:
        """``fusion.json``: how the sources' scores are combined (the weight tuned on held-out queries)."""
        return self.path / "fusion.json"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions_tst.npz"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def history_csv(self) -> Path:
        return self.path / "history.csv"

    @property
    def history_json(self) -> Path:
        return self.path / "history.json"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def readme(self) -> Path:
        return self.path / "README.md"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def plus_r_row(self) -> Path:
        """The demo's fused + R table row, kept so that showing it again is quick (``inference.sources``)."""
        return self.path / "fused-plus-r.json"

    @property
    def model(self) -> Path:
        """The final model folder (backbone in Hugging Face format + our heads); see :meth:`model_dir`."""
        return self.path / "model"

    @property
    def _model_partial(self) -> Path:
        return self.path / "model.partial"

    @property
    def _model_old(self) -> Path:
        return self.path / "model.old"

    # What training writes, in the order the run's README lists it: (attribute, what it is, hybrid runs only).
    TRAINED_FILES = (
        ("config", "the config as given", False),
        ("state", "data fingerprint, precision, wall time", False),
        ("model", "backbone in Hugging Face format + heads", False),
        ("label_embeddings", "the label embeddings searched at inference", False),
        ("label_texts", "the labels' texts, line i = label i", False),
        ("label_ids", "the data's own label ids, when it has them", False),
        ("test_ids", "the data's own test query ids, when it has them", False),
        ("predictions", "the test predictions", False),
        ("metrics", "final and zero-shot test metrics", False),
        ("history_csv", "the metrics of every evaluation", False),
        ("history_json", "the same as JSON", False),
        ("curves", "training curves", False),
        ("checkpoints", "the newest checkpoint, to resume", False),
        ("readme", "this file", False),
        ("sparse", "the sparse companion", True),
        ("fusion", "how its scores and the dense ones are fused", True),
    )
    _FOLDERS = frozenset({"model", "checkpoints", "sparse", "label_overlay"})

    def describe_files(self, hybrid: bool) -> list[tuple[str, str]]:
        """(name, what it is) of every file training writes here (folders end in ``/``), for the README."""
        return [
            (getattr(self, attr).name + ("/" if attr in self._FOLDERS else ""), what)
            for attr, what, hybrid_only in self.TRAINED_FILES
            if hybrid or not hybrid_only
        ]

    # ------------------------------------------------------------------------------------------ writing
    def lock(self, purpose: str = "vixml train") -> WriteLock:
        """The folder's write lock (not yet acquired; the folder is created): one writer at a time."""
        self.path.mkdir(parents=True, exist_ok=True)
        return WriteLock(self.path, purpose)

    def clean_stale(self) -> None:
        """Remove what a killed writer left (temporary files, a half-written model); hold the lock."""
        clean_stale_temps(self.path)
        clean_stale_temps(self.checkpoints)
        shutil.rmtree(self.path / "sparse.partial", ignore_errors=True)
        self._recover_model()
        shutil.rmtree(self._model_partial, ignore_errors=True)

    def replace_model(self, save: Callable[[Path], None]) -> Path:
        """Write a new final model with ``save(folder)`` and swap it in; readers always find a complete one.

        The new model is written to ``model.partial``; then the old one moves to ``model.old``, the new one to
        ``model`` and the old one is deleted. A reader arriving between the two renames reads ``model.old``.
        """
        self._recover_model()
        partial = self._model_partial
        shutil.rmtree(partial, ignore_errors=True)
        save(partial)
        if not (partial / MODEL_COMPLETE).exists():
            raise RuntimeError(f"the model written to {partial} is incomplete (no {MODEL_COMPLETE})")
        old = self._model_old
        shutil.rmtree(old, ignore_errors=True)
        if self.model.exists():
            self.model.rename(old)
        partial.rename(self.model)
        shutil.rmtree(old, ignore_errors=True)
        return self.model

    def _recover_model(self) -> None:
        """Finish a swap that a kill interrupted between its two renames."""
        if not (self.model / MODEL_COMPLETE).exists():
            for candidate in (self._model_partial, self._model_old):
                if (candidate / MODEL_COMPLETE).exists():
                    shutil.rmtree(self.model, ignore_errors=True)
                    candidate.rename(self.model)
                    logger.info("recovered the model of %s from %s", self.path, candidate.name)
                    return

    # ------------------------------------------------------------------------------------------ reading
    def model_dir(self) -> Path:
        """The complete model folder: ``model``, or ``model.old`` while a swap is between its renames."""
        for candidate in (self.model, self._model_old):
            if (candidate / MODEL_COMPLETE).exists():
                return candidate
        return self.model

    def missing(self) -> list[Problem]:
        """What a finished run has and this folder lacks (empty when it is complete)."""
        if not self.path.is_dir():
            return [Problem(str(self.path), "not a folder: expected a run folder written by `vixml train`")]
        problems = []
        if not self.config.is_file():
            problems.append(Problem(str(self.config), "missing: is this a vixml run folder?"))
        if not (self.model_dir() / MODEL_COMPLETE).exists():
            problems.append(Problem(str(self.model), "missing or incomplete: the run has not finished training"))
        if not self.label_embeddings.is_file():
            problems.append(Problem(str(self.label_embeddings), "missing: the run has not finished training"))
        return problems

    def require_finished(self) -> RunFolder:
        """Raise one :class:`DataError` listing every missing part, or return self."""
        problems = self.missing()
        if problems:
            raise DataError(problems)
        return self

    def load_label_embeddings(self, *, mmap: bool = False):
        """The (L, D) label embeddings; ``mmap`` maps them read-only (shared by server workers).

        Raises:
            DataError: the file is missing, truncated or not a 2-D float array.
        """
        import numpy as np

        path = self.label_embeddings
        fix = f"delete it and run `vixml train ... --out {self.path} --resume` to write it again"
        try:
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(Problem(str(path), "missing: the run has not finished training")) from None
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(Problem(str(path), f"unreadable label embeddings ({exc}); {fix}")) from None
        if array.ndim != 2 or array.dtype.kind != "f":
            raise DataError(Problem(str(path), f"expected a 2-D float array, got {array.dtype} {array.shape}; {fix}"))
        from vixml.finite import nonfinite_problem

        problem = nonfinite_problem(array, str(path), "label embeddings")
        if problem is not None:  # checked once here, so that every search can skip the label side
            raise DataError(problem)
        return array

    def load_config(self) -> RunConfig:
        from vixml.config import load_config

        if not self.config.is_file():
            raise DataError(Problem(str(self.config), "missing: is this a vixml run folder?"))
        return load_config(self.config)


class ExportFolder(RunFolder):
    """The files of an export (``vixml export RUN --to onnx --out DIR``): a run that serves without torch.

    It keeps a run's names for what it shares with one (``config.yaml``, ``label_embeddings.npy``,
    ``label_texts.txt``, ``labels_overlay``, ``sparse/``, ``fusion.json``, ``metrics.json``, ``README.md``) and
    adds the query encoder as one ONNX graph, the tokenizer files and ``export.json``. The whole folder is
    built beside its place and renamed into it, ``export.json`` written last inside it, so a folder without
    a readable ``export.json`` is a damaged or half-written one and is refused.
    """

    @property
    def manifest(self) -> Path:
        """``export.json``: format, version, precision, the encoder's inputs and the tokenizer settings."""
        return self.path / EXPORT_COMPLETE

    @property
    def query_encoder(self) -> Path:
        """The query side of the dual encoder: token ids and mask (and image inputs) in, the embedding out."""
        return self.path / "query_encoder.onnx"

    @property
    def tokenizer(self) -> Path:
        """The tokenizer as the ``tokenizers`` library reads it (``tokenizer.json`` and its companions)."""
        return self.path / "tokenizer"

    @property
    def tokenizer_file(self) -> Path:
        """The fast tokenizer's one file in :attr:`tokenizer` (what the ONNX encoder loads)."""
        return self.tokenizer / "tokenizer.json"

    @staticmethod
    def is_export(path: str | os.PathLike) -> bool:
        """An export's folder, complete or not (its graph without ``export.json``: refused by :meth:`missing`)."""
        folder = ExportFolder(path)
        return folder.manifest.is_file() or folder.query_encoder.is_file()

    def read_manifest(self) -> dict:
        """``export.json`` checked: format and version known (a DataError naming the file otherwise)."""
        path = self.manifest
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(
                Problem(str(path), "missing: not an export folder, or its export did not complete")
            ) from None
        except (OSError, ValueError) as exc:
            raise DataError(Problem(str(path), f"unreadable ({exc}); export the run again")) from None
        if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT or meta.get("version") != EXPORT_VERSION:
            got = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else type(meta).__name__
            raise DataError(Problem(str(path), f"format {got}; expected {EXPORT_FORMAT!r} version {EXPORT_VERSION}"))
        return meta

    def missing(self) -> list[Problem]:
        if not self.path.is_dir():
            return [Problem(str(self.path), "not a folder: expected an export folder written by `vixml export`")]
        needed = [self.config, self.label_embeddings]
        if self.read_manifest().get("to") == "onnx":
            needed += [self.tokenizer_file, self.query_encoder]
        return [Problem(str(p), "missing: the export folder is damaged; export the run again") for p in needed
                if not p.is_file()]  # fmt: skip

    def build_beside(self) -> Path:
        """A fresh temporary folder beside this one, for :meth:`publish` (stale ones of killed exports removed)."""
        import tempfile

        self.path.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.path.parent.glob(f".{self.path.name}.export-*"):
            shutil.rmtree(stale, ignore_errors=True)  # the caller holds the lock: no live export writes there
        built = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.export-", dir=self.path.parent))
        umask = os.umask(0)
        os.umask(umask)
        built.chmod(0o777 & ~umask)  # mkdtemp makes 0700 folders; the export gets the usual mode
        return built

    def publish(self, built: Path) -> None:
        """Swap the complete folder ``built`` (its ``export.json`` present) in; an old export is replaced."""
        if not (built / EXPORT_COMPLETE).is_file():
            raise RuntimeError(f"the export built in {built} is incomplete (no {EXPORT_COMPLETE})")
        old = self.path.with_name(f".{self.path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if self.path.exists():
            self.path.rename(old)
        built.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def export_lock(self) -> WriteLock:
        """One export into a place at a time (the lock file sits beside the folder, which is replaced whole)."""
        return WriteLock(self.path.with_name(f"{self.path.name}.export"), "vixml export")


def open_run(path: str | os.PathLike) -> RunFolder:
    """The folder at ``path`` (a hub id resolved first): an :class:`ExportFolder` or a :class:`RunFolder`."""
    path = resolve_run(path)
    return ExportFolder(path) if ExportFolder.is_export(path) else RunFolder(path)


HUB_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"


def resolve_run(run: str | os.PathLike) -> Path:
    """A local run or export folder for ``run``: the path itself, or for a hub id (``org/name``, not a local
    path) its snapshot from the Hugging Face Hub (the local cache only when ``HF_HUB_OFFLINE=1``).

    Raises:
        DataError: an ``org/name`` that is neither a folder here nor found on the hub (or in its offline cache).
    """
    import re

    path = Path(run).expanduser()
    text = str(run)
    if path.exists() or not re.match(HUB_ID, text) or text.startswith((".", "~")):
        return path
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise DataError(Problem(text, "no such folder; as a hub id it needs `pip install huggingface_hub`")) from None
    try:
        return Path(snapshot_download(repo_id=text))
    except Exception as exc:  # the hub's own error types (offline, not found, no cache): all mean "not here"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            Problem(text, f"no such folder, and the hub has no run by that id ({type(exc).__name__}: {first})")
        ) from None
