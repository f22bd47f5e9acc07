"""The HTTP service over a trained run (FastAPI): predict, runtime label edits, health, metrics, the web page.

Importing ``vixml.serve`` needs the ``serve`` extra (fastapi, uvicorn, prometheus-client, fastapi-offline).
"""

from __future__ import annotations

from vixml.serve.app import create_app
from vixml.serve.run import serve
from vixml.serve.settings import Limits, ServeSettings

__all__ = ["Limits", "ServeSettings", "create_app", "serve"]
