"""The pixel budget: waits instead of failing, first come first served, never deadlocks."""

from __future__ import annotations

import asyncio

import pytest

from batch.inference.pixel_budget import PixelBudget


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_requests_wait_for_budget_in_arrival_order() -> None:
    async def main() -> None:
        budget = PixelBudget(100)
        order: list[str] = []
        release = {name: asyncio.Event() for name in "abcd"}

        async def user(name: str, pixels: int) -> None:
            async with budget.hold(pixels):
                order.append(name)
                await release[name].wait()

        tasks = [asyncio.create_task(user("a", 60))]
        await settle()
        tasks += [asyncio.create_task(user("b", 60)), asyncio.create_task(user("c", 10))]
        await settle()
        # c would fit, but b came first and is waiting: c waits behind it (no starvation of large images).
        assert order == ["a"] and budget.in_use == 60 and budget.waiting == 2
        release["a"].set()
        await settle()
        assert order == ["a", "b", "c"] and budget.in_use == 70
        release["b"].set()
        release["c"].set()
        await asyncio.gather(*tasks)
        assert budget.in_use == 0 and budget.peak_in_use == 70

    asyncio.run(main())


def test_an_image_larger_than_the_budget_runs_alone() -> None:
    async def main() -> None:
        budget = PixelBudget(100)
        await budget.acquire(30)
        big = asyncio.create_task(budget.acquire(500))
        await settle()
        assert not big.done()  # waits for the others to finish ...
        budget.release(30)
        await asyncio.wait_for(big, 5)  # ... then runs alone instead of deadlocking
        assert budget.in_use == 500
        small = asyncio.create_task(budget.acquire(1))
        await settle()
        assert not small.done()
        budget.release(500)
        await asyncio.wait_for(small, 5)
        assert budget.in_use == 1

    asyncio.run(main())


def test_a_cancelled_waiter_gives_way() -> None:
    async def main() -> None:
        budget = PixelBudget(100)
        await budget.acquire(90)
        blocked = asyncio.create_task(budget.acquire(50))
        await settle()
        behind = asyncio.create_task(budget.acquire(10))
        await settle()
        assert not behind.done()
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        await asyncio.wait_for(behind, 5)
        assert budget.in_use == 100

    asyncio.run(main())


def test_zero_means_unlimited() -> None:
    async def main() -> None:
        budget = PixelBudget(0)
        for _ in range(3):
            await asyncio.wait_for(budget.acquire(10**9), 5)
        assert budget.in_use == 3 * 10**9

    asyncio.run(main())
