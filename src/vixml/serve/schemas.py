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
    id: str | None = Field(None, description="The query's own id, given back with its result as query_id.")
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
    query_id: str | None = Field(None, description="The query's id, when the request gave one.")
    labels: list[int] = Field(..., description="Label rows, best first.")
    ids: list[str] = Field(..., description="The labels' own ids (the catalogue's; the row number without one).")
    texts: list[str | None] = Field(..., description="Their texts (null when the run has no label texts).")
    scores: list[float] = Field(..., description="Their scores (inner products; probabilities with augment).")
    sources: list[list[str]] | None = Field(
        None, description="Which sources found each label (dense, sparse, +R); fused scores are z-score mixtures."
    )


class PredictResponse(BaseModel):
    results: list[QueryResult]


class LabelIn(BaseModel):
    text: str = Field(..., description="The new label's text.", examples=["bluetooth speaker"])
    id: str | None = Field(
        None, description="Its own id (refused with 409 when another label has it); default: its row number."
    )
    images: list[str] = Field(default_factory=list, description="Images as base64, for runs with label images.")


class AddLabelsRequest(BaseModel):
    labels: list[LabelIn]


class AddLabelsResponse(BaseModel):
    rows: list[int] = Field(..., description="The new labels' rows, in request order.")
    ids: list[str] = Field(..., description="The new labels' own ids, in request order.")
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
    label_ids: bool = False  # the run kept its catalogue's label ids (else row numbers are the ids)
    augment: bool
    sparse: bool = False  # the run has a sparse companion: predictions are fused (source: dense|sparse|fused)
    editable: bool
    edit_refusal: str | None
    token_required: bool
    workers: int
    report: bool
    limits: dict[str, int]
