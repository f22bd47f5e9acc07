"""vixml.search: top-k maximum inner product search, exact (blocked, CPU/GPU) and approximate (hnswlib/faiss).

Exact search::

    from vixml.search import topk, to_csr
    scores, ids = topk(query_embeddings, label_embeddings, k=100)   # (n, 100) float32, int64
    predictions = to_csr(scores, ids, n_labels=len(label_embeddings))

Indexes behind one interface (``build / search / save / load / recall``), chosen by name::

    from vixml.search import build_index, Index, available_indexes
    index = build_index("hnswlib", label_embeddings, M=32)         # or "exact", "faiss-hnsw", ...
    index.save("run/index"); Index.load("run/index").search(query_embeddings, k=10)

Importing this package loads neither torch nor faiss/hnswlib; they load on first use.
"""

from __future__ import annotations

from vixml.search import index_exact, index_faiss, index_hnswlib  # noqa: F401  (register the backends)
from vixml.search.exact import PRECISIONS, Precision, topk
from vixml.search.index import Index, available_indexes, build_index, index_class, recall_at_k, register_index
from vixml.search.index_exact import ExactIndex
from vixml.search.index_faiss import FaissFlatIndex, FaissHNSWIndex, FaissIVFIndex
from vixml.search.index_hnswlib import HnswlibIndex
from vixml.search.sparse import to_csr

__all__ = [
    "topk",
    "Precision",
    "PRECISIONS",
    "to_csr",
    "Index",
    "build_index",
    "register_index",
    "available_indexes",
    "index_class",
    "recall_at_k",
    "ExactIndex",
    "HnswlibIndex",
    "FaissFlatIndex",
    "FaissHNSWIndex",
    "FaissIVFIndex",
]
