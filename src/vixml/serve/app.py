"""The HTTP service over a trained run: predict, label edits, health, info, Prometheus metrics, the web page.

``create_app(predictor, settings)`` builds the FastAPI app; ``vixml serve`` runs it under uvicorn (one
process, or ``--workers N`` read-only processes through :func:`app_from_env`). Every request is bounded
(:class:`~vixml.serve.settings.Limits`); a violation is a 4xx whose ``detail`` names the field.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import logging
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from vixml import __version__
from vixml.errors import DataError, VixmlError
from vixml.inference import Predictor
from vixml.inference.free_input import TrainingQueries, predict_embeddings
from vixml.inference.labels import LabelIdTaken, Predictions, add_labels, check_label_id, hide_labels, unhide_labels
from vixml.inference.overlay import LabelOverlay
from vixml.locking import WriteLock
from vixml.serve.batcher import Job, MicroBatcher, slice_predictions
from vixml.serve.errors import RequestError
from vixml.serve.images import PixelBudget, decode_base64_image, decode_image
from vixml.serve.metrics import CONTENT_TYPE_LATEST, MetricsMiddleware, ServerMetrics
from vixml.serve.schemas import AddLabelsRequest, AddLabelsResponse, Info, PredictRequest, PredictResponse
from vixml.serve.settings import ServeSettings

__all__ = ["create_app", "app_from_env", "STATIC_DIR"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("vixml.serve") / "static"))


_IMAGE_FILES = File(default_factory=list, description="Image files (PNG/JPEG/WebP/GIF).")


class _BodyLimit:
    """Refuse bodies over ``max_bytes`` with a 413: by Content-Length, and by counting a streamed body.

    The body is read here (at most ``max_bytes``) and replayed to the app, so a chunked upload is stopped
    at the limit instead of inside a route (where body-parsing errors become a generic 400).
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send)
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > self.max_bytes:
                return await self._refuse(send)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, send):
        body = RequestError(413, ["body"], f"request body larger than {self.max_bytes} bytes").detail
        response = JSONResponse({"detail": body}, status_code=413)
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _Service:
    """What the routes share: the predictor, the batcher, the settings, the metrics, the edit lock."""

    def __init__(self, predictor: Predictor, settings: ServeSettings, training: TrainingQueries | None):
        self.predictor = predictor
        self.settings = settings
        self.training = training
        self.metrics = ServerMetrics()
        self.batcher = MicroBatcher(
            self.run_batch,
            window_s=settings.batch_window_ms / 1000,
            max_batch=settings.max_batch,
            on_batch=self.metrics.batch_queries.observe,
        )
        self.report_html: bytes | None = None
        images = predictor.config.images
        self.num_images = min(images.num_images, settings.limits.max_images) if images else 0
        self.count_labels()

    def count_labels(self) -> None:
        labels = self.predictor.labels
        self.metrics.labels.labels("trained").set(labels.num_trained)
        self.metrics.labels.labels("added").set(len(labels.overlay.added))
        self.metrics.labels.labels("hidden").set(len(labels.overlay.hidden))

    def run_batch(self, jobs: list[Job]) -> list[Predictions]:
        """One encoder pass over every query of the batch, one search per kind of scoring (worker thread)."""
        texts = [text for job in jobs for text in job.texts]
        images = None
        if any(job.images for job in jobs):
            images = [items for job in jobs for items in (job.images or [[] for _ in job.texts])]
        queries = self.predictor.encode(texts, images)
        self.metrics.queries.inc(len(texts))
        starts, offset = [], 0
        for job in jobs:
            starts.append(offset)
            offset += len(job.texts)
        results: list[Predictions | None] = [None] * len(jobs)
        for augment, source in sorted({(job.augment, job.source) for job in jobs}):
            chosen = [i for i, job in enumerate(jobs) if (job.augment, job.source) == (augment, source)]
            rows = [r for i in chosen for r in range(starts[i], starts[i] + len(jobs[i].texts))]
            k = max(jobs[i].k for i in chosen)
            found = predict_embeddings(
                self.predictor,
                queries[rows],
                [texts[r] for r in rows],
                k=k,
                augment=self.training if augment else None,
                source=source,
            )
            at = 0
            for i in chosen:
                n = len(jobs[i].texts)
                results[i] = slice_predictions(found, slice(at, at + n), jobs[i].k)
                at += n
        return results

    # ------------------------------------------------------------------------------------------ checks
    def check_editor(self, authorization: str | None) -> None:
        refusal = self.settings.edit_refusal()
        if refusal is not None:
            raise RequestError(403, ["server"], refusal, "forbidden")
        token = self.settings.token
        if token is None:
            return
        if not authorization:
            raise RequestError(401, ["header", "authorization"], "label edits need 'Authorization: Bearer TOKEN'")
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise RequestError(403, ["header", "authorization"], "wrong token", "forbidden")

    def check_text(self, text: str, loc: list) -> str:
        limit = self.settings.limits.max_text_chars
        if not text.strip():
            raise RequestError(422, loc, "empty text")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # JSON may escape half of a surrogate pair; no tokenizer reads it
            raise RequestError(422, loc, f"not valid Unicode: a lone surrogate at character {exc.start}") from None
        if len(text) > limit:
            raise RequestError(422, loc, f"text of {len(text)} characters; at most {limit}")
        return text.strip()

    def pixel_budget(self) -> PixelBudget:
        """The pixels one request may decode (each image, and all of them)."""
        return PixelBudget(self.settings.limits.max_image_pixels, self.settings.limits.max_request_pixels)

    def check_images(self, images: list, loc: list, side: str, budget: PixelBudget | None = None) -> list | None:
        if not images:
            return None
        if not self.predictor.model.uses_images(side):
            raise RequestError(422, loc, f"this run encodes {side}s from text only; send no images")
        if len(images) > self.num_images:
            raise RequestError(422, loc, f"{len(images)} images; at most {self.num_images}")
        max_bytes = self.settings.limits.max_image_bytes
        budget = budget or self.pixel_budget()
        return [
            decode_base64_image(im, [*loc, j], max_bytes, budget)
            if isinstance(im, str)
            else decode_image(im, [*loc, j], max_bytes, budget)
            for j, im in enumerate(images)
        ]

    def check_predict(self, n_queries: int, k: int, augment: bool, source: str = "auto") -> None:
        limits = self.settings.limits
        try:
            self.predictor.retriever.resolve(source)
        except VixmlError as exc:
            raise RequestError(422, ["body", "source"], str(exc)) from None
        if n_queries == 0:
            raise RequestError(422, ["body", "queries"], "at least one query")
        if n_queries > limits.max_queries:
            raise RequestError(422, ["body", "queries"], f"{n_queries} queries; at most {limits.max_queries}")
        if not 1 <= k <= limits.max_k:
            raise RequestError(422, ["body", "k"], f"k must be between 1 and {limits.max_k}, got {k}")
        if augment and self.training is None:
            raise RequestError(422, ["body", "augment"], "augment needs the server started with --data DIR")

    def find_label(self, ref: str) -> int:
        """The row a path names (its own id first, then a row number), or a 404 naming it."""
        labels = self.predictor.labels
        row = labels.find(ref)
        if row is None:
            last = labels.num_labels - 1
            message = f"no label has the id {ref!r}, and it is not a row number 0..{last}"
            raise RequestError(404, ["path", "label_id"], message, "not_found")
        return row

    def check_label_id(self, value: str | None, index: int) -> str | None:
        if value is None:
            return None
        try:
            return check_label_id(value, "id")
        except DataError as exc:
            raise RequestError(422, ["body", "labels", index, "id"], exc.problems[0].message) from None

    # ------------------------------------------------------------------------------------------ info
    def info(self) -> Info:
        p, s = self.predictor, self.settings
        labels = p.labels
        return Info(
            vixml=__version__,
            run=str(p.run.path if p.run else ""),
            model=str(p.config.model.name_or_path),
            embedding_dim=int(p.label_embeddings.shape[1]),
            trained_labels=labels.num_trained,
            added_labels=len(labels.overlay.added),
            hidden_labels=len(labels.overlay.hidden),
            visible_labels=labels.num_visible,
            prototypes=p.model.prototypes is not None,
            query_images=p.model.uses_images("query"),
            label_images=p.model.uses_images("label"),
            num_images=self.num_images,
            label_texts=p.label_texts is not None,
            label_ids=labels.base_ids is not None,
            augment=self.training is not None,
            sparse=p.sparse is not None,
            editable=s.edit_refusal() is None,
            edit_refusal=s.edit_refusal(),
            token_required=s.token is not None,
            workers=s.workers,
            report=p.run is not None,
            limits=s.limits.__dict__,
        )


def create_app(
    predictor: Predictor,
    settings: ServeSettings,
    training: TrainingQueries | None = None,
    *,
    edit_lock: WriteLock | None = None,
) -> FastAPI:
    """The FastAPI app serving ``predictor`` (see the module doc); label edits persist in its run folder.

    Args:
        predictor: the loaded run.
        settings: bind address, token, limits, batching.
        training: the training queries, for ``augment`` (None: augment is refused).
        edit_lock: the overlay's write lock when the caller already holds it; otherwise an editable app takes
            it at start-up and frees it at shutdown.
    """
    from fastapi_offline import FastAPIOffline

    service = _Service(predictor, settings, training)
    editable = settings.edit_refusal() is None and predictor.run is not None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        own = None
        if editable and edit_lock is None:
            own = LabelOverlay.lock(predictor.run, f"vixml serve on {settings.host}:{settings.port}").acquire()
        await service.batcher.start()
        try:
            yield
        finally:
            await service.batcher.stop()
            if own is not None:
                own.release()

    app = FastAPIOffline(
        title="vixml",
        version=__version__,
        description="Predict labels with a trained ViXML run; add and hide labels at runtime.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(_BodyLimit, max_bytes=settings.limits.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)  # outermost: refused requests count too

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        """pydantic's 422 without the offending input (it may be NaN or infinite: not JSON)."""
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, 422)

    @app.exception_handler(VixmlError)
    async def vixml_error(request: Request, exc: VixmlError):
        problems = exc.problems if isinstance(exc, DataError) else []
        detail = [{"loc": [p.field or "input"], "msg": p.message, "type": "data"} for p in problems]
        return JSONResponse({"detail": detail or [{"loc": ["input"], "msg": str(exc), "type": "data"}]}, 422)

    @app.post("/predict", response_model=PredictResponse, summary="Top-k labels of one or more queries")
    async def predict(body: PredictRequest) -> PredictResponse:
        k = min(10, settings.limits.max_k) if body.k is None else body.k
        service.check_predict(len(body.queries), k, body.augment, body.source)
        texts = [service.check_text(q.text, ["body", "queries", i, "text"]) for i, q in enumerate(body.queries)]
        budget = service.pixel_budget()
        images = [
            service.check_images(q.images, ["body", "queries", i, "images"], "query", budget)
            for i, q in enumerate(body.queries)
        ]
        per_query = [im or [] for im in images] if any(images) else None
        result = await service.batcher.submit(texts, per_query, k, body.augment, body.source)
        query_ids = [q.id for q in body.queries]
        return JSONResponse({"results": result.records(query_ids=query_ids)})  # the response model's shape

    @app.post("/predict/upload", response_model=PredictResponse, summary="Top-k labels of one query (multipart)")
    async def predict_upload(
        text: str = Form(..., description="The query text."),
        k: int = Form(10),
        augment: bool = Form(False),
        source: str = Form("auto"),
        images: list[UploadFile] = _IMAGE_FILES,
    ) -> PredictResponse:
        service.check_predict(1, k, augment, source)
        text = service.check_text(text, ["body", "text"])
        limit = service.settings.limits.max_image_bytes
        raw = [await f.read(limit + 1) for f in images]
        decoded = service.check_images(raw, ["body", "images"], "query")
        result = await service.batcher.submit([text], [decoded] if decoded else None, k, augment, source)
        return JSONResponse({"results": result.records()})

    @app.post("/labels", response_model=AddLabelsResponse, summary="Add labels (searchable at once, persisted)")
    async def add(body: AddLabelsRequest, authorization: str | None = Header(None)) -> AddLabelsResponse:
        service.check_editor(authorization)
        limit = settings.limits.max_new_labels
        if not 1 <= len(body.labels) <= limit:
            raise RequestError(422, ["body", "labels"], f"{len(body.labels)} labels; between 1 and {limit}")
        texts = [service.check_text(lab.text, ["body", "labels", i, "text"]) for i, lab in enumerate(body.labels)]
        budget = service.pixel_budget()
        images = [
            service.check_images(lab.images, ["body", "labels", i, "images"], "label", budget)
            for i, lab in enumerate(body.labels)
        ]
        per_label = [im or [] for im in images] if any(images) else None
        ids = [service.check_label_id(lab.id, i) for i, lab in enumerate(body.labels)]
        try:
            rows = await service.batcher.run_in_worker(
                functools.partial(add_labels, by="http"), predictor, texts, per_label, ids
            )
        except LabelIdTaken as exc:
            message = "; ".join(problem.message for problem in exc.problems)
            raise RequestError(409, ["body", "labels", "id"], message, "conflict") from None
        service.count_labels()
        keys = [predictor.labels.key(r) for r in rows]
        return AddLabelsResponse(rows=rows, ids=keys, labels=predictor.labels.num_visible)

    @app.get("/labels", summary="The run's label edits: added labels, hidden ones, the history of edits")
    async def edits() -> dict:
        labels = predictor.labels
        overlay = labels.overlay
        return {
            "trained_labels": labels.num_trained,
            "added": [{"row": a.id, "id": labels.key(a.id), "text": a.text} for a in overlay.added],
            "hidden": [{"row": r, "id": labels.key(r)} for r in sorted(overlay.hidden)],
            "history": list(overlay.history),
        }

    @app.delete("/labels/{label_id:path}", summary="Hide a label (its own id, else its row); undo with unhide")
    async def delete(label_id: str, authorization: str | None = Header(None)) -> dict:
        service.check_editor(authorization)
        row = service.find_label(label_id)
        await service.batcher.run_in_worker(functools.partial(hide_labels, by="http"), predictor, [row])
        service.count_labels()
        return {"hidden": row, "id": predictor.labels.key(row), "labels": predictor.labels.num_visible}

    @app.post("/labels/{label_id:path}/unhide", summary="Show a hidden label again (undo a hide)")
    async def unhide(label_id: str, authorization: str | None = Header(None)) -> dict:
        service.check_editor(authorization)
        row = service.find_label(label_id)
        await service.batcher.run_in_worker(functools.partial(unhide_labels, by="http"), predictor, [row])
        service.count_labels()
        return {"unhidden": row, "id": predictor.labels.key(row), "labels": predictor.labels.num_visible}

    @app.get("/labels/{label_id:path}", summary="One label's text and state (by its own id, else its row)")
    async def label(label_id: str) -> dict:
        labels = predictor.labels
        row = service.find_label(label_id)
        return {"row": row, "id": labels.key(row), "text": labels.text(row), "hidden": labels.is_hidden(row),
                "added": row >= labels.num_trained}  # fmt: skip

    @app.get("/health", summary="Liveness")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/info", response_model=Info, summary="The run, its labels, what this server allows")
    async def info() -> Info:
        return service.info()

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/report", summary="The run's report (HTML)", response_class=HTMLResponse)
    async def report() -> Response:
        run = predictor.run
        if run is None:
            raise RequestError(404, ["report"], "this server has no run folder")
        if run.report.is_file():
            return FileResponse(run.report, media_type="text/html")
        if service.report_html is None:
            from vixml.reports.html import build_report

            service.report_html = (await service.batcher.run_in_worker(build_report, [run.path])).encode()
        return HTMLResponse(service.report_html)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """The app of one ``--workers N`` process: settings from the environment, label embeddings memory-mapped."""
    settings = ServeSettings.from_env()
    predictor = Predictor.load(settings.run, device=settings.device, mmap=True, index=settings.index)
    training = TrainingQueries.from_dataset(predictor, settings.data) if settings.data else None
    return create_app(predictor, settings, training)
