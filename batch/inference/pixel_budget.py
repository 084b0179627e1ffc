"""A budget for the pixels being decoded or held at once, across all requests (`POSE_DECODE_BUDGET_MPIX`).

Memory in this service is pixels: a decoded image costs a few bytes per pixel while it is decoded,
letterboxed and annotated, whatever its size in bytes (a 155 KB PNG can hold 80 MP). Each image
reserves its decoded pixel count before decoding and gives it back once its result (and annotated
JPEG) is made; a request that does not fit waits, in arrival order, instead of failing.

The model's input is charged too: the letterboxed canvas, whose size is set by `imgsz`, not by the image
(a 32x32 PNG at imgsz=4096 is a 16.8 MP canvas). On a CPU the forward's working memory is ~90-100 bytes
per canvas pixel (ONNX Runtime and OpenVINO, batch 1-8, imgsz 640 and 1280, measured), against the <= 12
bytes per decoded pixel the budget's bound assumes, so a canvas pixel counts as `canvas_weight` (9)
budget pixels there; on CUDA the forward's memory is the GPU's and the host holds the uint8 canvas only.

An image larger than the whole budget is admitted alone, once nothing else holds any: it still works,
the bound is then that image's own size, and nothing deadlocks. Waiting is strictly first come, first
served, so a large image is never starved by a stream of small ones.

Used from the event loop only (no locking needed).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# Budget pixels per canvas pixel, by the device the forward runs on (the README's Memory bound).
_CANVAS_WEIGHT = {"cuda": 1}
CPU_CANVAS_WEIGHT = 9  # ceil(~100 bytes per canvas pixel in a CPU forward / 12 bytes per budget pixel)


def canvas_weight(device_type: str) -> int:
    """What one pixel of the letterboxed canvas costs in the budget when the forward runs on `device_type`."""
    return _CANVAS_WEIGHT.get(device_type, CPU_CANVAS_WEIGHT)


class PixelBudget:
    def __init__(self, capacity: int) -> None:
        """`capacity` pixels; 0 means no limit."""
        self.capacity = capacity
        self.in_use = 0
        self.peak_in_use = 0  # for /metrics and tests
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        await self.acquire(pixels)
        try:
            yield
        finally:
            self.release(pixels)

    async def acquire(self, pixels: int) -> None:
        if not self._waiters and self._fits(pixels):
            self._take(pixels)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (pixels, future)
        self._waiters.append(entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(pixels)  # granted just as we were cancelled: give it back
            else:
                self._waiters.remove(entry)
                self._grant()  # we may have been blocking smaller requests behind us
            raise

    def release(self, pixels: int) -> None:
        self.in_use -= pixels
        self._grant()

    def _fits(self, pixels: int) -> bool:
        return self.capacity == 0 or self.in_use == 0 or self.in_use + pixels <= self.capacity

    def _take(self, pixels: int) -> None:
        self.in_use += pixels
        self.peak_in_use = max(self.peak_in_use, self.in_use)

    def _grant(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            pixels, future = self._waiters.popleft()
            if future.done():  # cancelled while queued
                continue
            self._take(pixels)
            future.set_result(None)
