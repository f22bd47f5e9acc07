"""The search tests exercise every precision route, bf16-rescore's included, on any CPU.

``bf16-rescore`` becomes fp32 on CPUs that emulate bf16 (vixml.devices; the suite pins that answer in
tests/conftest.py): here the answer is "native", so the bf16 route runs (slowly on such CPUs, on tiny data).
The fallback itself is tested in test_search_exact.py.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _bf16_counts_as_native(monkeypatch):
    monkeypatch.setenv("VIXML_NATIVE_BF16", "1")
