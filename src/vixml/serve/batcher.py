"""Micro-batching: concurrent requests share one encoder pass, so many small requests run at batch speed.

Requests wait in a queue; the batching task takes the first, then whatever else arrives within a short
window (or until ``max_batch`` queries), and runs the whole batch in one worker thread: one encoder pass
over every text, then one search per kind of scoring with the largest ``k`` asked (the top-``k`` of a
request is a prefix of the top-``K`` list, ties included). The event loop stays free meanwhile, and
requests arriving during a pass form the next batch. The same single thread runs label edits, so the model
is only ever used by one thread. A batch that fails runs again one request at a time, so a request that
breaks the encoder fails alone and never its batch-mates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from vixml.inference.labels import Predictions

__all__ = ["MicroBatcher", "Job"]

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """One request's queries."""

    texts: list[str]
    images: list[list] | None  # one list of PIL images per query, or None
    k: int
    augment: bool
    future: asyncio.Future = field(repr=False, default=None)
    source: str = "auto"  # the retriever's source (vixml.retrieval.SOURCES)


class MicroBatcher:
    """Collects :class:`Job` s into batches and runs ``run_batch(jobs) -> [Predictions per job]`` in one thread.

    Args:
        run_batch: computes every job of a batch (called in the worker thread).
        window_s: how long a batch waits for more jobs after its first.
        max_batch: queries per batch (a larger single request runs alone).
        on_batch: called with the number of queries of every batch (metrics).
    """

    def __init__(
        self,
        run_batch: Callable[[list[Job]], list[Predictions]],
        *,
        window_s: float = 0.002,
        max_batch: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.run_batch = run_batch
        self.window_s = window_s
        self.max_batch = max_batch
        self.on_batch = on_batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vixml-encoder")
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="vixml-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def submit(
        self, texts: list[str], images: list[list] | None, k: int, augment: bool, source: str = "auto"
    ) -> Predictions:
        """Queue the queries of one request and wait for their predictions."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        job = Job(texts, images, k, augment, asyncio.get_running_loop().create_future(), source)
        await self._queue.put(job)
        return await job.future

    async def run_in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the encoder thread (between batches): label edits use the model too."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        carried: Job | None = None  # the job that did not fit into the previous batch starts the next one
        while True:
            first, carried = carried or await self._queue.get(), None
            batch, size = [first], len(first.texts)
            deadline = loop.time() + self.window_s
            while size < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(self._queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                if size + len(job.texts) > self.max_batch:
                    carried = job
                    break
                batch.append(job)
                size += len(job.texts)
            await self._run(batch, size)

    async def _run(self, batch: list[Job], size: int) -> None:
        live = [job for job in batch if not job.future.done()]  # a client that went away was cancelled
        if not live:
            return
        if self.on_batch is not None:
            self.on_batch(size)
        try:
            results = await asyncio.get_running_loop().run_in_executor(self.executor, self.run_batch, live)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request, logged by the app
            if len(live) > 1:  # one request's failure must not fail its batch-mates: each runs again alone
                logger.warning("a batch of %d requests failed (%s); running each alone", len(live), exc)
                for job in live:
                    await self._run([job], len(job.texts))
                return
            if not live[0].future.done():
                live[0].future.set_exception(exc)
            return
        for job, result in zip(live, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)


def slice_predictions(predictions: Predictions, rows: slice, k: int) -> Predictions:
    """Rows ``rows`` of a batch's predictions, cut to ``k`` labels."""
    return Predictions(
        predictions.scores[rows, :k],
        predictions.indices[rows, :k],
        [texts[:k] for texts in predictions.texts[rows]],
        None if predictions.found is None else predictions.found[rows, :k],
        None if predictions.ids is None else [ids[:k] for ids in predictions.ids[rows]],
    )
