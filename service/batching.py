"""Micro-batching: concurrent requests are gathered into one model call.

Each model gets a :class:`MicroBatcher`. Requests ``await batcher.submit(item)``; one worker task
takes the first waiting item, then keeps collecting until it has ``max_batch`` items or
``max_wait_ms`` have passed since the first, and runs ``fn(items)`` in a worker thread (so the
event loop never blocks on inference). The queue is bounded: when it is full, ``submit`` raises
:class:`OverloadedError` at once (the API answers 503 with Retry-After) instead of letting latency grow
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class OverloadedError(RuntimeError):
    """The batcher's queue is full; the caller should retry later."""


@dataclass
class BatchStats:
    """Counters for /metrics: how many batches ran and how big they were."""

    batches: int = 0
    items: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    def add(self, size: int) -> None:
        self.batches += 1
        self.items += size
        self.sizes[size] = self.sizes.get(size, 0) + 1


class MicroBatcher(Generic[T, R]):
    """Gathers items from concurrent callers into batches for ``fn``.

    Args:
        fn: called in a worker thread with a list of 1..max_batch items; must return one result per
            item, in order. If it raises, every caller in that batch gets the exception.
        max_batch: largest batch passed to ``fn``.
        max_wait_ms: how long the first item of a batch may wait for company. 0 disables waiting
            (a batch is whatever is already queued).
        max_queue: items allowed to wait; beyond that :meth:`submit` raises :class:`OverloadedError`.
        name: for logs and metrics.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        name: str = "model",
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.name = name
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue(maxsize=max_queue)
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the worker task (call from the running event loop, e.g. the app lifespan)."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(OverloadedError(f"{self.name} batcher stopped"))

    async def submit(self, item: T) -> R:
        """Queue one item and wait for its result."""
        if self._worker is None:
            self.start()
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, fut))
        except asyncio.QueueFull:
            raise OverloadedError(f"the {self.name} model is busy ({self._queue.maxsize} requests waiting)") from None
        return await fut

    async def _collect(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            self.stats.add(len(live))
            try:
                results = await asyncio.to_thread(self._fn, [item for item, _ in live])
                if len(results) != len(live):
                    raise RuntimeError(f"{self.name}: batch function returned {len(results)} results for {len(live)}")
            except Exception as e:  # every caller of the batch gets the error, the worker lives on
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, fut), result in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
