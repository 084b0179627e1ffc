"""Dynamic batching: concurrent callers' items are gathered into one model batch.

A batch closes when it holds `max_batch_size` items or `max_wait_s` has passed since its first item
arrived; items already queued when a batch finishes go straight into the next one, so under load the
model never waits. Batches run on dedicated threads, so the event loop (and with it decoding, encoding
and S3 I/O for other requests) keeps going during a forward pass: one at a time, or up to `lanes` at
once for a backend that runs several forwards side by side (OpenVINO's streams on the CPU: two
single-threaded streams run this model ~8% faster on two cores than one stream on both, and never
leave a core spinning while the other finishes). A batch is only gathered once a lane is free, so
items keep joining it while the lanes are busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Out = TypeVar("Out")


@dataclass
class BatchStats:
    """Aggregate batch figures for the server's lifetime, in constant memory: the histogram has at most
    `max_batch_size` keys (a batch never holds more), however long the server runs."""

    batches: int = 0
    images: int = 0
    histogram: dict[int, int] = field(default_factory=dict)  # batch size -> how many batches had it

    def record(self, size: int) -> None:
        self.batches += 1
        self.images += size
        self.histogram[size] = self.histogram.get(size, 0) + 1

    @property
    def mean(self) -> float:
        return self.images / self.batches if self.batches else 0.0

    @property
    def largest(self) -> int:
        return max(self.histogram, default=0)

    def as_dict(self) -> dict[str, object]:
        return {
            "batches": self.batches,
            "images": self.images,
            "mean_batch_size": round(self.mean, 2),
            "batch_size_histogram": {str(size): n for size, n in sorted(self.histogram.items())},
        }


class DynamicBatcher(Generic[Item, Out]):
    def __init__(
        self,
        run_batch: Callable[[Sequence[Item]], Sequence[Out]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        lanes: int = 1,
        name: str = "model",
    ) -> None:
        self._run_batch = run_batch
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._lanes = lanes
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Out]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()  # batches in flight, at most `lanes`
        self._executor = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix=f"{name}-batches")
        self.stats = BatchStats()  # bounded: /metrics, the benchmark and the tests read it

    async def submit(self, item: Item) -> Out:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._work())
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for task in list(self._running):
            task.cancel()
        self._executor.shutdown(wait=True)

    async def _work(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        lane_free = asyncio.Semaphore(self._lanes)
        while True:
            await lane_free.acquire()
            pending = [await self._queue.get()]
            deadline = loop.time() + self._max_wait_s
            while len(pending) < self._max_batch_size:
                if not self._queue.empty():
                    pending.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    pending.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            live = [(item, future) for item, future in pending if not future.cancelled()]
            if not live:
                lane_free.release()
                continue
            task = loop.create_task(self._run(loop, live))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _: lane_free.release())

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[Item, asyncio.Future[Out]]]) -> None:
        items = [item for item, _ in batch]
        self.stats.record(len(items))
        try:
            outputs = await loop.run_in_executor(self._executor, self._run_batch, items)
        except Exception as exc:
            if len(batch) > 1:
                # One item (or the batch's size, e.g. out of GPU memory) broke it: retry singly so the
                # others still get their results.
                log.warning("batch of %d failed (%s); retrying its items one by one", len(batch), exc)
                for pair in batch:
                    await self._run(loop, [pair])
                return
            _settle(batch[0][1], exc)
            return
        for (_, future), output in zip(batch, outputs, strict=True):
            if not future.done():
                future.set_result(output)


def _settle(future: asyncio.Future[Out], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
