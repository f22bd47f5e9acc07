"""Suite-wide settings.

Precision ``auto`` follows the CPU (bf16 on CPUs with AVX512_BF16/AMX, fp32 elsewhere, see vixml.devices).
The suite pins the "no native bf16" answer so that every machine (this AMX one, an AVX2-only CI runner)
trains the same fp32 models; tests of the bf16 route ask for it explicitly or set the variable themselves.
Set here, before any test runs, so that the CLI subprocesses inherit it.
"""

from __future__ import annotations

import os

os.environ.setdefault("VIXML_NATIVE_BF16", "0")
