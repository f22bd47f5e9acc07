"""vixml: extreme multi-label classification with LLM and vision-enhanced dual encoders (ViXML).

Importing the package is cheap: sub-packages load their heavy dependencies (torch, transformers,
faiss, ...) only when used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
