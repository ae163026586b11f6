"""`MicroBatcher`: the texts of concurrent requests run through one `nlp.pipe` call, on
one worker thread, and each request gets its own docs back.

Requests wait in an asyncio queue. One task on the server's event loop takes the oldest
request and adds the ones behind it until the oldest has waited `window_ms` or the batch
holds `max_batch` texts; a request that would overflow the batch opens the next one. The
batch runs on a single worker thread (a `ThreadPoolExecutor` of one: the pipeline is
never called from two threads at once, and the event loop stays free), which runs
`nlp.pipe` over all its texts and turns each doc into the JSON of the answer. While it
runs, new requests queue; they are the next batch, which starts at once if its oldest
request has already waited the window. `window_ms=0` turns micro-batching off: one
request per `nlp.pipe` call, still on the one thread.

A request whose caller is cancelled (its client went away) is dropped from its batch if
the batch has not started, and its answer is thrown away if it has; either way the other
requests are not touched. When `nlp.pipe` raises on a batch of several requests, each of
them is run again alone, so only the request that fails gets the error.
"""
from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional

Answer = Dict[str, Any]  # one doc: {"ents": [...], "cats": {...}}


class PipelineError(Exception):
    """`nlp.pipe` raised on this request's texts; the message is one line."""


class ServiceStopping(Exception):
    """The batcher stopped before this request ran."""


def doc_answer(doc: Any) -> Answer:
    """A doc's entities (text, label, character offsets) and cats, as JSON types."""
    ents = [{"text": e.text, "label": e.label_, "start_char": e.start_char, "end_char": e.end_char} for e in doc.ents]
    return {"ents": ents, "cats": {label: float(score) for label, score in doc.cats.items()}}


@dataclass
class BatchStats:
    """What the batcher has done since it started: `sizes` holds the texts of the latest
    `nlp.pipe` calls (the last 1,000), `cancelled` the requests whose caller left
    (cancelled its `annotate` call) before the answer, `dropped` those of them whose
    batch had not started, so their texts never ran."""

    batches: int = 0
    texts: int = 0
    requests: int = 0
    cancelled: int = 0
    dropped: int = 0
    failed: int = 0
    largest: int = 0
    sizes: Deque[int] = field(default_factory=lambda: deque(maxlen=1000))

    def as_json(self) -> Dict[str, Any]:
        mean = self.texts / self.batches if self.batches else 0.0
        return {"batches": self.batches, "texts": self.texts, "requests": self.requests, "cancelled": self.cancelled, "dropped": self.dropped,
                "failed": self.failed, "largest_batch": self.largest, "mean_batch": round(mean, 2)}


@dataclass
class _Request:
    texts: List[str]
    future: asyncio.Future
    arrived: float  # loop.time() when it was queued


class MicroBatcher:
    """Collects the texts of concurrent `annotate` calls into `nlp.pipe` calls.

    nlp (Language): The pipeline; only the worker thread calls it.
    max_batch (int): Texts per `nlp.pipe` call at most (a single request with more runs
        alone).
    window_ms (float): How long the oldest waiting request may wait for others to join
        its batch; 0 turns micro-batching off.

    `start()` and `stop()` run on the event loop that serves the requests (the app's
    lifespan does both).
    """

    def __init__(self, nlp: Any, *, max_batch: int = 64, window_ms: float = 5.0) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        if window_ms < 0:
            raise ValueError(f"window_ms must be 0 (off) or more, not {window_ms}")
        self.nlp = nlp
        self.max_batch = max_batch
        self.window_ms = window_ms
        self.stats = BatchStats()
        self._queue: Optional[asyncio.Queue] = None
        self._task: Optional[asyncio.Task] = None
        self._executor: Optional[ThreadPoolExecutor] = None
        self._held: Optional[_Request] = None  # taken from the queue, too big for the last batch
        self._taken: List[_Request] = []  # the batch being collected or run

    @property
    def waiting(self) -> int:
        """Requests queued and not yet in a batch."""
        return (self._queue.qsize() if self._queue else 0) + (self._held is not None)

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the batcher is already running")
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spacy-encoder-serve")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="spacy-encoder-batcher")

    async def stop(self) -> None:
        """Stop taking batches; requests still waiting fail with `ServiceStopping`."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        left = [*self._taken, *([self._held] if self._held else [])]
        while self._queue is not None and not self._queue.empty():
            left.append(self._queue.get_nowait())
        for request in left:
            if not request.future.done():
                request.future.set_exception(ServiceStopping("the service is stopping"))
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._task, self._held, self._taken = None, None, []

    async def annotate(self, texts: List[str]) -> List[Answer]:
        """One answer per text, in order, from the batch these texts join. Raises
        `PipelineError` if the pipeline fails on them, `ServiceStopping` on shutdown."""
        if self._task is None or self._task.done():
            raise ServiceStopping("the batcher is not running")
        loop = asyncio.get_running_loop()
        request = _Request(list(texts), loop.create_future(), loop.time())
        self._queue.put_nowait(request)
        try:
            return await request.future
        except asyncio.CancelledError:
            # Cancelling the caller has cancelled the future: the batcher skips it.
            self.stats.cancelled += 1
            raise

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            collected = await self._collect(loop)
            batch = [r for r in collected if not r.future.done()]
            self.stats.dropped += len(collected) - len(batch)
            try:
                if batch:
                    await self._run_batch(loop, batch)
            except Exception as err:  # noqa: BLE001 - the loop must outlive any one batch
                _fail(batch, PipelineError(_one_line(err)))
            self._taken = []  # kept when cancelled: stop() fails them

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> List[_Request]:
        first = self._held or await self._queue.get()
        self._held = None
        self._taken = batch = [first]
        size = len(first.texts)
        if self.window_ms == 0:
            return batch
        deadline = first.arrived + self.window_ms / 1000
        while size < self.max_batch:
            if self._queue.empty():
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
            else:
                request = self._queue.get_nowait()
            if size + len(request.texts) > self.max_batch:
                self._held = request
                break
            batch.append(request)
            size += len(request.texts)
        return batch

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: List[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        try:
            answers = await loop.run_in_executor(self._executor, self._pipe, texts)
        except Exception as err:  # noqa: BLE001 - retried request by request below
            if len(batch) == 1:
                self.stats.failed += 1
                _fail(batch, PipelineError(_one_line(err)))
                return
            for request in batch:  # one request's bad text must not fail the others
                if not request.future.done():
                    await self._run_batch(loop, [request])
            return
        self._count(batch, len(texts))
        start = 0
        for request in batch:
            end = start + len(request.texts)
            if not request.future.done():  # a caller that left mid-batch: answer thrown away
                request.future.set_result(answers[start:end])
            start = end

    def _pipe(self, texts: List[str]) -> List[Answer]:
        """On the worker thread: one `nlp.pipe` call, one answer per text."""
        return [doc_answer(doc) for doc in self.nlp.pipe(texts, batch_size=max(1, len(texts)))]

    def _count(self, batch: List[_Request], n_texts: int) -> None:
        self.stats.batches += 1
        self.stats.texts += n_texts
        self.stats.requests += len(batch)
        self.stats.largest = max(self.stats.largest, n_texts)
        self.stats.sizes.append(n_texts)


def _fail(batch: List[_Request], err: Exception) -> None:
    for request in batch:
        if not request.future.done():
            request.future.set_exception(err)


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:500]
