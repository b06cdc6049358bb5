"""The micro-batcher groups concurrent requests, keeps order, bounds its queue and survives errors."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.batching import MicroBatcher, OverloadedError


def test_concurrent_requests_are_batched_and_results_routed_back() -> None:
    seen: list[int] = []

    def fn(items: list[int]) -> list[int]:
        seen.append(len(items))
        return [x * 10 for x in items]

    async def main() -> list[int]:
        b = MicroBatcher(fn, max_batch=4, max_wait_ms=50)
        b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(10)))
        finally:
            await b.stop()

    assert asyncio.run(main()) == [i * 10 for i in range(10)]
    assert max(seen) == 4 and sum(seen) == 10 and len(seen) < 10


def test_a_single_request_is_not_held_longer_than_max_wait() -> None:
    async def main() -> float:
        b = MicroBatcher(lambda xs: xs, max_batch=8, max_wait_ms=20)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await b.submit(1) == 1
        await b.stop()
        return loop.time() - t0

    assert asyncio.run(main()) < 2.0  # generous: only checks it does not wait for a full batch


def test_errors_reach_every_caller_and_the_worker_survives() -> None:
    def fn(items: list[int]) -> list[int]:
        if 3 in items:
            raise ValueError("bad item")
        return items

    async def main() -> None:
        b = MicroBatcher(fn, max_batch=8, max_wait_ms=30)
        results = await asyncio.gather(*(b.submit(i) for i in (1, 2, 3)), return_exceptions=True)
        assert all(isinstance(r, ValueError) for r in results)
        assert await b.submit(5) == 5
        await b.stop()

    asyncio.run(main())


def test_full_queue_is_refused_immediately() -> None:
    gate = threading.Event()

    def slow(items: list[int]) -> list[int]:
        gate.wait(5)
        return items

    async def main() -> None:
        b = MicroBatcher(slow, max_batch=1, max_wait_ms=0, max_queue=2)
        first = asyncio.create_task(b.submit(0))
        await asyncio.sleep(0.05)  # worker picked item 0 and is blocked in slow()
        queued = [asyncio.create_task(b.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0.01)
        with pytest.raises(OverloadedError, match="busy"):
            await b.submit(3)
        gate.set()
        assert await first == 0
        assert [await q for q in queued] == [1, 2]
        assert b.stats.items == 3
        await b.stop()

    asyncio.run(main())


def test_wrong_number_of_results_is_an_error() -> None:
    async def main() -> None:
        b = MicroBatcher(lambda xs: xs[:-1], max_batch=2, max_wait_ms=10)
        with pytest.raises(RuntimeError, match="returned"):
            await b.submit(1)
        await b.stop()

    asyncio.run(main())


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(lambda xs: xs, max_batch=0)
