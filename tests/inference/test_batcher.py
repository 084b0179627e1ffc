"""The dynamic batcher: concurrent items share batches; a failing batch does not fail its neighbours."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from batch.inference.batcher import BatchStats, DynamicBatcher


def test_concurrent_items_are_batched_and_answered_in_order() -> None:
    def double(items: Sequence[int]) -> list[int]:
        return [2 * i for i in items]

    async def main() -> tuple[list[int], BatchStats]:
        batcher = DynamicBatcher(double, max_batch_size=8, max_wait_s=0.05)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
        await batcher.close()
        return list(results), batcher.stats

    results, stats = asyncio.run(main())
    assert results == [2 * i for i in range(20)]
    assert stats.images == 20 and stats.largest == 8 and stats.batches <= 4
    assert sum(size * n for size, n in stats.histogram.items()) == 20
    assert stats.mean == 20 / stats.batches


def test_items_queued_during_a_batch_form_the_next_one() -> None:
    gate = threading.Event()

    def slow(items: Sequence[int]) -> list[int]:
        gate.wait(5)
        return list(items)

    async def main() -> dict[int, int]:
        batcher = DynamicBatcher(slow, max_batch_size=16, max_wait_s=0.0)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)  # the first batch (of one) is now running and blocked
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, *rest)
        await batcher.close()
        return batcher.stats.histogram

    assert asyncio.run(main()) == {1: 1, 10: 1}


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
    async def main() -> BatchStats:
        batcher = DynamicBatcher(lambda items: list(items), max_batch_size=size, max_wait_s=0.01)
        await asyncio.gather(*(batcher.submit(i) for i in range(7)))
        await batcher.close()
        return batcher.stats

    stats = asyncio.run(main())
    assert stats.largest <= size and stats.images == 7


def test_stats_stay_bounded_over_many_batches() -> None:
    """The server's lifetime figures take constant memory: one histogram key per distinct batch size."""
    stats = BatchStats()
    for i in range(100_000):
        stats.record(1 + i % 8)
    assert stats.batches == 100_000 and len(stats.histogram) == 8
    assert stats.mean == pytest.approx(4.5)


def test_lanes_run_batches_side_by_side() -> None:
    """With two lanes, a second batch starts while the first still runs (each waits for the other here:
    with one lane this would deadlock, hence the timeout)."""
    both_running = threading.Barrier(2, timeout=5)

    def meet(items: Sequence[int]) -> list[int]:
        both_running.wait()
        return list(items)

    async def main() -> BatchStats:
        batcher = DynamicBatcher(meet, max_batch_size=2, max_wait_s=0.0, lanes=2)
        await asyncio.gather(*(batcher.submit(i) for i in range(4)))
        await batcher.close()
        return batcher.stats

    stats = asyncio.run(main())
    assert stats.images == 4 and stats.batches == 2
