"""vixml.data: read, validate, prepare and write XMC datasets.

Formats (DESIGN.md section 4): one-text-per-line files (UTF-8 or latin-1, plain or ``id->text``),
``*_X_Y.txt`` sparse label files or scipy ``.npz``, ``row label`` filter files, released image
embeddings with pickle-free item -> image maps, and XC-repository / CSV / JSONL / Parquet sources that
``prepare_dataset`` turns into a dataset folder. Importing this package loads numpy and scipy only;
numba (label-file kernels) and pyarrow (Parquet) load when first needed.
"""

from __future__ import annotations

from vixml.data.catalogue import CatalogueFiles, find_catalogue
from vixml.data.dataset import XMCDataset, load_dataset
from vixml.data.filters import read_filter, write_filter
from vixml.data.image_maps import ImageMap, convert_image_map, image_map_from_entries, read_image_map, write_image_map
from vixml.data.images import ImageBank, ImageFiles, discover_image_files
from vixml.data.labels import read_label_matrix, write_label_matrix
from vixml.data.manifest import read_manifest
from vixml.data.prepare import detect_source, prepare_dataset
from vixml.data.stats import dataset_stats
from vixml.data.texts import TextStore, read_texts, write_texts
from vixml.data.validate import validate_dataset

__all__ = [
    "CatalogueFiles",
    "ImageBank",
    "ImageFiles",
    "ImageMap",
    "TextStore",
    "XMCDataset",
    "convert_image_map",
    "dataset_stats",
    "detect_source",
    "discover_image_files",
    "find_catalogue",
    "image_map_from_entries",
    "load_dataset",
    "prepare_dataset",
    "read_filter",
    "read_image_map",
    "read_label_matrix",
    "read_manifest",
    "read_texts",
    "validate_dataset",
    "write_filter",
    "write_image_map",
    "write_label_matrix",
    "write_texts",
]
