"""Suite-wide settings and shared, session-scoped test inputs (tiny random-weight models, a planted dataset).

Precision ``auto`` follows the CPU (bf16 on CPUs with AVX512_BF16/AMX, fp32 elsewhere, see vixml.devices).
The suite pins the "no native bf16" answer so that every machine (an AMX one, an AVX2-only CI runner)
trains the same fp32 models; tests of the bf16 route ask for it explicitly or set the variable themselves.
Set here, before any test runs, so that the CLI subprocesses inherit it.

Model fixtures are folders (``from_pretrained`` loads a fresh copy each time, so no test sees another's
weights); ``train_config`` gives the small, fast training config that the end-to-end tests share.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from support_data import PLANTED_LABELS, make_dataset
from support_models import make_tiny_bert, make_tiny_gemma3, make_tiny_llama, make_tiny_qwen2
from vixml.config import RunConfig, apply_overrides

os.environ.setdefault("VIXML_NATIVE_BF16", "0")
# The search measures its fastest backend once per machine and caches the choice (vixml.search.gemm): the
# suite keeps that cache in a folder of its own (measured once per session), never in the user's home.
os.environ.setdefault("VIXML_CACHE_DIR", tempfile.mkdtemp(prefix="vixml-test-cache-"))

DECODERS = {"qwen2": make_tiny_qwen2, "llama": make_tiny_llama, "gemma3_text": make_tiny_gemma3}


@pytest.fixture(scope="session")
def planted_data(tmp_path_factory):
    """240 training and 60 test queries over 24 labels whose texts share words with their labels."""
    return make_dataset(
        tmp_path_factory.mktemp("planted"), n_train=240, n_test=60, n_labels=PLANTED_LABELS, max_labels=2
    )


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, planted_data):
    """A 2-layer, 32-wide BERT whose word-piece vocabulary covers the planted data."""
    from vixml.data import load_dataset

    ds = load_dataset(planted_data)
    texts = list(ds.trn_texts) + list(ds.lbl_texts) + list(ds.tst_texts)
    return make_tiny_bert(tmp_path_factory.mktemp("bert"), vocab_texts=texts, hidden=32, layers=2, heads=2)


@pytest.fixture(scope="session", params=sorted(DECODERS))
def decoder_path(request, tmp_path_factory):
    """Each registered tiny decoder architecture in turn (Qwen2, Llama, Gemma 3 text)."""
    return DECODERS[request.param](tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="session")
def qwen_path(tmp_path_factory):
    return make_tiny_qwen2(tmp_path_factory.mktemp("qwen2"))


@pytest.fixture(scope="session")
def train_config():
    """``train_config(model_path, *overrides)``: a 6-epoch CPU run sized for the planted data (fp32)."""

    def make(model_path, *extra: str) -> RunConfig:
        return apply_overrides(
            RunConfig(),
            [
                f"model.name_or_path={model_path}",
                "prototypes=null",  # plain unless a test sets prototypes.* (the empty config is PRIME now)
                "data.max_length=16",
                "train.epochs=6",
                "train.batch_size=32",
                "train.lr=2e-3",
                "train.warmup_steps=5",
                "train.eval_every=0",
                "train.checkpoint_every=1",
                "train.device=cpu",
                "train.precision=fp32",
                "mining.cluster_size=4",
                "mining.double_at=[]",
                "mining.start_epoch=2",
                "mining.update_every=2",
                "eval.topk=10",
                "eval.encode_batch_size=64",
                *extra,
            ],
        )

    return make
