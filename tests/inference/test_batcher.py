"""The dynamic batcher: concurrent items share batches; a failing batch does not fail its neighbours."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from batch.inference.batcher import DynamicBatcher


def test_concurrent_items_are_batched_and_answered_in_order() -> None:
    def double(items: Sequence[int]) -> list[int]:
        return [2 * i for i in items]

    async def main() -> tuple[list[int], list[int]]:
        batcher = DynamicBatcher(double, max_batch_size=8, max_wait_s=0.05)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
        await batcher.close()
        return list(results), batcher.batch_sizes

    results, sizes = asyncio.run(main())
    assert results == [2 * i for i in range(20)]
    assert sum(sizes) == 20 and max(sizes) == 8 and len(sizes) <= 4


def test_items_queued_during_a_batch_form_the_next_one() -> None:
    gate = threading.Event()

    def slow(items: Sequence[int]) -> list[int]:
        gate.wait(5)
        return list(items)

    async def main() -> list[int]:
        batcher = DynamicBatcher(slow, max_batch_size=16, max_wait_s=0.0)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)  # the first batch (of one) is now running and blocked
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, *rest)
        await batcher.close()
        return batcher.batch_sizes

    assert asyncio.run(main()) == [1, 10]


def test_a_failing_batch_is_retried_item_by_item() -> None:
    def fragile(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky")
        return list(items)

    async def main() -> list[object]:
        batcher = DynamicBatcher(fragile, max_batch_size=8, max_wait_s=0.05)
        results = await asyncio.gather(*(batcher.submit(i) for i in (11, 12, 13, 14)), return_exceptions=True)
        await batcher.close()
        return list(results)

    results = asyncio.run(main())
    assert results[:2] == [11, 12] and results[3] == 14
    assert isinstance(results[2], ValueError)


@pytest.mark.parametrize("size", [1, 3])
def test_batch_size_bound(size: int) -> None:
    async def main() -> list[int]:
        batcher = DynamicBatcher(lambda items: list(items), max_batch_size=size, max_wait_s=0.01)
        await asyncio.gather(*(batcher.submit(i) for i in range(7)))
        await batcher.close()
        return batcher.batch_sizes

    assert max(asyncio.run(main())) <= size
