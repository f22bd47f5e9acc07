"""A dataset folder cut to its first queries: a quick run on real data (the demo, benchmarks' quick sizes)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["first_queries"]


def first_queries(src: Path, staging: Path, sizes: dict[str, int]) -> Path:
    """A copy of the bundled dataset with the first ``sizes[split]`` queries of each split (0 = all).

    Query texts, label rows and reciprocal-pair filters are cut together; labels are kept whole, so the
    label ids and the test metrics' label space do not change.
    """
    import shutil

    staging.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.name.startswith(("trn", "tst", "filter_labels_")):
            continue
        shutil.copy2(path, staging / path.name)
    for split, filter_name in (("trn", "filter_labels_train.txt"), ("tst", "filter_labels_test.txt")):
        texts = (src / f"{split}.raw.txt").read_text(encoding="utf-8").splitlines()
        header, *rows = (src / f"{split}_X_Y.txt").read_text(encoding="utf-8").splitlines()
        keep = min(sizes[split] or len(texts), len(texts))
        n_labels = header.split()[1]
        (staging / f"{split}.raw.txt").write_text("\n".join(texts[:keep]) + "\n", encoding="utf-8")
        (staging / f"{split}_X_Y.txt").write_text(
            "\n".join([f"{keep} {n_labels}", *rows[:keep]]) + "\n", encoding="utf-8"
        )
        if (src / filter_name).exists():
            pairs = (src / filter_name).read_text(encoding="utf-8").splitlines()
            kept = [pair for pair in pairs if pair.strip() and int(pair.split()[0]) < keep]
            (staging / filter_name).write_text("".join(f"{pair}\n" for pair in kept), encoding="utf-8")
    return staging
