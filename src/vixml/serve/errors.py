"""Request errors as FastAPI reports validation errors: ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``."""

from __future__ import annotations

from fastapi import HTTPException

__all__ = ["RequestError"]


class RequestError(HTTPException):
    """A 4xx whose body names the field at fault (``loc``, as pydantic writes it) and the reason."""

    def __init__(self, status: int, loc: list, message: str, kind: str = "limit"):
        super().__init__(status, detail=[{"loc": list(loc), "msg": message, "type": kind}])
        self.loc = list(loc)
        self.message = message
