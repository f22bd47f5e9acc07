"""The sparse companion: TF-IDF features of a query's text and a label tree of linear rankers (omikuji).

A lexical ranker that trains in seconds on a CPU and is strong where the dual encoder is weak: frequent
labels with characteristic words (HYBRID.md). Features are scikit-learn's TF-IDF (word n-grams, sublinear
term frequency, l2 rows); the ranker is omikuji's Parabel-style forest of balanced label trees with a linear
classifier per node. With ``label_texts`` each label's own text is one more training row of that label, so
the ranker knows labels from their text too (labels without training queries included).

Why omikuji and not PECOS: measured on the bundled data and the man-page set (benchmarks/RESULTS.md,
``hybrid``), and libpecos pins numpy<2 and scipy<1.14 and has no wheel for Python 3.13, where omikuji is a
0.5 MB wheel for every Python vixml supports.

Saved as a folder without pickles: ``vectorizer.json`` (settings and vocabulary), ``idf.npy``, omikuji's
own ``model/`` and ``sparse.json`` (written last: its presence means a complete companion).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vixml.config import SparseConfig
from vixml.errors import DataError, Problem
from vixml.optional import require
from vixml.run_folder import SPARSE_COMPLETE

__all__ = ["SparseRanker", "SPARSE_FORMAT", "SPARSE_COMPLETE"]

logger = logging.getLogger(__name__)

SPARSE_FORMAT = "vixml-sparse/1"


class SparseRanker:
    """TF-IDF + an omikuji label forest over the trained labels.

    Build it with :meth:`fit` or :meth:`load`; :meth:`search` gives each text's top-k labels with scores in
    (0, 1] (the product of the node classifiers' probabilities along the label's path, averaged over trees).
    """

    def __init__(self, vectorizer, model, num_labels: int, settings: SparseConfig):
        self.vectorizer = vectorizer
        self.model = model
        self.num_labels = num_labels
        self.settings = settings

    # ------------------------------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        labels: sp.csr_matrix,
        label_texts: Sequence[str] | None,
        settings: SparseConfig,
        folder: str | Path,
        *,
        threads: int | None = None,
    ) -> SparseRanker:
        """Train on (texts, their label rows), save to ``folder`` and return the companion read back from it.

        Rows without labels are skipped. The saved copy is what every route reads, and what is returned:
        omikuji's freshly trained forest averages its trees in another order than a loaded one (scores
        differ in the last bits), so predictions made at training time equal those made later.

        Args:
            texts: n query texts.
            labels: (n, L) label matrix.
            label_texts: the L label texts (extra training rows with ``settings.label_texts``).
            settings: the run's ``sparse`` section.
            folder: where the companion is written (atomically).
            threads: omikuji's training threads (default: all cores).
        """
        omikuji = _omikuji()
        labels = sp.csr_matrix(labels)
        rows = np.flatnonzero(np.diff(labels.indptr) > 0)
        train_texts = [texts[int(r)] for r in rows]
        train_labels = labels[rows]
        if settings.label_texts and label_texts is not None:
            train_texts += [str(t) for t in label_texts]
            train_labels = sp.vstack([train_labels, sp.identity(labels.shape[1], format="csr", dtype=np.float32)])
        vectorizer = _vectorizer(settings)
        features = vectorizer.fit_transform(train_texts)
        hyper = omikuji.Model.default_hyper_param()
        hyper.n_trees = settings.trees
        hyper.linear_weight_threshold = settings.weight_threshold
        hyper.cluster_k = settings.cluster_k
        hyper.max_depth = settings.max_depth
        with tempfile.TemporaryDirectory(prefix="vixml-sparse-") as tmp:
            path = Path(tmp) / "train.txt"
            _write_xmc_file(path, features, sp.csr_matrix(train_labels), labels.shape[1])
            with _quiet():
                model = omikuji.Model.train_on_data(str(path), hyper, n_threads=threads)
        cls(vectorizer, model, labels.shape[1], settings).save(folder)
        del model, features  # one forest in memory at a time: the copy read back replaces the trained one
        from vixml.memory_fit import give_back_freed

        give_back_freed()
        return cls.load(folder)

    # ------------------------------------------------------------------------------------------ predicting
    def features(self, texts: Sequence[str]) -> sp.csr_matrix:
        """(n, F) l2-normalised TF-IDF rows of ``texts``."""
        return self.vectorizer.transform([str(t) for t in texts]).tocsr()

    def search(self, texts: Sequence[str], k: int, *, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` labels of each text: (n, k) float32 scores (descending, -inf = padding), int64 ids (-1)."""
        x = self.features(texts)
        n = x.shape[0]
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        beam = max(self.settings.beam_size, 1)

        def one(row: int) -> None:
            lo, hi = x.indptr[row], x.indptr[row + 1]
            pairs = list(zip(x.indices[lo:hi].tolist(), x.data[lo:hi].tolist(), strict=True))
            found = self.model.predict(pairs, beam_size=beam, top_k=k) if pairs else []
            if found:
                found.sort(key=lambda item: (-item[1], item[0]))  # ties: lower id first, as every source ranks
                ids[row, : len(found)] = [f[0] for f in found]
                scores[row, : len(found)] = [f[1] for f in found]

        workers = threads or min(8, os.cpu_count() or 1)
        if workers <= 1 or n < 64:
            for row in range(n):
                one(row)
        else:  # omikuji's calls release the GIL (cffi): rows in parallel threads
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, range(n), chunksize=64))
        return scores, ids

    # ------------------------------------------------------------------------------------------ files
    def save(self, folder: str | Path) -> Path:
        """Write the companion as a folder, atomically: a fresh sibling renamed into place."""
        folder = Path(folder)
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        params = {
            "ngram_range": list(self.vectorizer.ngram_range),
            "min_df": self.vectorizer.min_df,
            "max_features": self.vectorizer.max_features,
        }
        vocabulary = self.vectorizer.get_feature_names_out().tolist()
        (partial / "vectorizer.json").write_text(
            json.dumps({"params": params, "vocabulary": vocabulary}, ensure_ascii=False), encoding="utf-8"
        )
        np.save(partial / "idf.npy", self.vectorizer.idf_.astype(np.float64))
        with _quiet():
            self.model.save(str(partial / "model"))
        record = {"format": SPARSE_FORMAT, "num_labels": self.num_labels, "settings": asdict(self.settings)}
        (partial / SPARSE_COMPLETE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        _fsync_tree(partial)
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        partial.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> SparseRanker:
        """Read a saved companion; a missing or damaged folder is a :class:`DataError` naming the file."""
        omikuji = _omikuji()
        folder = Path(folder)
        record_path = folder / SPARSE_COMPLETE
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            saved = json.loads((folder / "vectorizer.json").read_text(encoding="utf-8"))
            idf = np.load(folder / "idf.npy", allow_pickle=False)
        except FileNotFoundError as exc:
            raise DataError(Problem(str(exc.filename), "missing: the sparse companion is incomplete")) from None
        except (OSError, ValueError) as exc:
            raise DataError(Problem(str(folder), f"unreadable sparse companion: {exc}")) from None
        if record.get("format") != SPARSE_FORMAT:
            raise DataError(Problem(str(record_path), f"expected format {SPARSE_FORMAT!r}", field="format"))
        vocabulary = saved["vocabulary"]
        if idf.shape != (len(vocabulary),):
            raise DataError(Problem(str(folder / "idf.npy"), f"expected {len(vocabulary)} values, got {idf.shape}"))
        params = saved["params"]
        settings = SparseConfig(**record["settings"])
        vectorizer = _vectorizer(settings, vocabulary=vocabulary)
        vectorizer.set_params(ngram_range=tuple(params["ngram_range"]))
        vectorizer.idf_ = idf
        try:
            with _quiet():
                model = omikuji.Model.load(str(folder / "model"))
        except RuntimeError as exc:
            raise DataError(Problem(str(folder / "model"), f"unreadable omikuji model: {exc}")) from None
        if model.n_features != len(vocabulary):
            raise DataError(
                Problem(
                    str(folder / "model"), f"expects {model.n_features} features, vocabulary has {len(vocabulary)}"
                )
            )
        return cls(vectorizer, model, int(record["num_labels"]), settings)


def _omikuji():
    with _quiet():  # its import starts a Rust logger that writes to stdout
        return require("omikuji", "sparse")


@contextlib.contextmanager
def _quiet():
    """Send what omikuji's Rust code prints (a logger on stdout, progress bars on stderr) to our debug log:
    stdout is the ``--json`` channel. File descriptors 1 and 2 are redirected while the call runs."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            lines = [line for line in text.replace("\r", "\n").splitlines() if "INFO" in line or "WARN" in line]
            for line in lines:
                logger.debug("omikuji: %s", line.strip())


def _vectorizer(settings: SparseConfig, vocabulary: list[str] | None = None):
    text = require("sklearn.feature_extraction.text", "sparse")
    return text.TfidfVectorizer(
        ngram_range=(1, settings.ngrams),
        min_df=1 if vocabulary is not None else settings.min_df,
        max_features=None if vocabulary is not None else settings.max_features,
        sublinear_tf=True,
        strip_accents="unicode",
        dtype=np.float32,
        vocabulary=vocabulary,
    )


def _write_xmc_file(path: Path, features: sp.csr_matrix, labels: sp.csr_matrix, num_labels: int) -> None:
    """The XMC repository text format omikuji trains from: ``n_rows n_features n_labels``, then per row
    ``l1,l2 f:v f:v`` (features sorted)."""
    features.sort_indices()
    with open(path, "w", encoding="ascii") as fh:
        fh.write(f"{features.shape[0]} {features.shape[1]} {num_labels}\n")
        for row in range(features.shape[0]):
            lo, hi = labels.indptr[row], labels.indptr[row + 1]
            head = ",".join(map(str, labels.indices[lo:hi].tolist()))
            lo, hi = features.indptr[row], features.indptr[row + 1]
            body = " ".join(f"{f}:{v:.6g}" for f, v in zip(features.indices[lo:hi], features.data[lo:hi], strict=True))
            fh.write(f"{head} {body}\n")


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())


def require_libraries() -> None:
    """Raise :class:`~vixml.errors.MissingExtraError` naming ``vixml[sparse]`` unless its libraries import."""
    _omikuji()
    require("sklearn.feature_extraction.text", "sparse")
