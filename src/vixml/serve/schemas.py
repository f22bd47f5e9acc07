"""The request and response bodies of the HTTP API (pydantic models: validated, and shown at ``/docs``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "AddLabelsRequest",
    "AddLabelsResponse",
    "Info",
    "LabelIn",
    "PredictRequest",
    "PredictResponse",
    "Query",
    "QueryResult",
]


class Query(BaseModel):
    text: str = Field(..., description="The query text.", examples=["wireless noise cancelling headphones"])
    images: list[str] = Field(
        default_factory=list,
        description="Images as base64 (PNG/JPEG/WebP/GIF, a data: URI prefix allowed); only for runs with images.",
    )


class PredictRequest(BaseModel):
    queries: list[Query] = Field(..., description="One or more queries.")
    k: int | None = Field(None, description="Labels returned per query (default 10, or the server's max_k if less).")
    augment: bool = Field(False, description="Retrieval-augmented scoring (+R); needs a server started with --data.")
    source: str = Field(
        "auto", description="auto (fused when the run has a sparse companion, else dense), dense, sparse or fused."
    )


class QueryResult(BaseModel):
    labels: list[int] = Field(..., description="Label ids, best first.")
    texts: list[str | None] = Field(..., description="Their texts (null when the run has no label texts).")
    scores: list[float] = Field(..., description="Their scores (inner products; probabilities with augment).")
    sources: list[list[str]] | None = Field(
        None, description="Which sources found each label (dense, sparse, +R); fused scores are z-score mixtures."
    )


class PredictResponse(BaseModel):
    results: list[QueryResult]


class LabelIn(BaseModel):
    text: str = Field(..., description="The new label's text.", examples=["bluetooth speaker"])
    images: list[str] = Field(default_factory=list, description="Images as base64, for runs with label images.")


class AddLabelsRequest(BaseModel):
    labels: list[LabelIn]


class AddLabelsResponse(BaseModel):
    ids: list[int] = Field(..., description="The new labels' ids, in request order.")
    labels: int = Field(..., description="Labels now visible.")


class Info(BaseModel):
    vixml: str
    run: str
    model: str
    embedding_dim: int
    trained_labels: int
    added_labels: int
    hidden_labels: int
    visible_labels: int
    prototypes: bool
    query_images: bool
    label_images: bool
    num_images: int
    label_texts: bool
    augment: bool
    sparse: bool = False  # the run has a sparse companion: predictions are fused (source: dense|sparse|fused)
    editable: bool
    edit_refusal: str | None
    token_required: bool
    workers: int
    report: bool
    limits: dict[str, int]
