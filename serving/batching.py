"""Dynamic micro-batching: concurrent requests decoded together, answered one by one.

One :class:`MicroBatcher` per served model. Requests wait in a bounded queue; a single worker
coroutine takes the oldest, then gathers the queued requests that can share its batch (same
strategy and options) until the batch holds ``max_batch_size`` texts or ``batch_timeout`` has
passed since the oldest arrived (TensorFlow Serving's ``max_batch_size`` and
``batch_timeout_micros``). The runtime call runs on one worker thread, so the event loop keeps
answering (health checks, metrics, new requests) while a batch decodes.

Example:
    >>> import asyncio
    >>> async def demo():
    ...     b = MicroBatcher(lambda key, texts: [t.upper() for t in texts],
    ...                      max_batch_size=8, batch_timeout=0.01, max_queue=4)
    ...     b.start()
    ...     out = await asyncio.gather(b.submit(("greedy",), ["a", "b"]), b.submit(("greedy",), ["c"]))
    ...     await b.stop()
    ...     return out, b.batch_sizes
    >>> asyncio.run(demo())
    ([['A', 'B'], ['C']], [3])
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from typing import Callable, Hashable, List, Optional, Sequence


class QueueFullError(RuntimeError):
    """The model's queue holds ``max_queue`` requests already (HTTP 503 + Retry-After)."""


class _Item:
    __slots__ = ("key", "texts", "future", "arrived")

    def __init__(self, key, texts, future):
        self.key, self.texts, self.future = key, texts, future
        self.arrived = time.monotonic()


class MicroBatcher:
    """Gathers requests into batches for one model.

    Args:
        run: ``run(key, texts) -> list`` (one result per text), called on the worker thread
            with the texts of every request in the batch, in order.
        max_batch_size: Most texts in one batch (a larger request runs alone).
        batch_timeout: Longest wait, in seconds, for a batch to fill after its oldest request
            arrived (0: take only what is already queued).
        max_queue: Most requests waiting; :meth:`submit` raises :class:`QueueFullError` beyond.
        on_batch: Optional ``on_batch(n_texts)`` after each batch (metrics).
    """

    def __init__(self, run: Callable[[Hashable, List[str]], list], max_batch_size: int = 32,
                 batch_timeout: float = 0.002, max_queue: int = 256,
                 on_batch: Optional[Callable[[int], None]] = None):
        self.run, self.max_batch_size = run, int(max_batch_size)
        self.batch_timeout, self.max_queue = float(batch_timeout), int(max_queue)
        self.on_batch = on_batch
        self.batch_sizes: List[int] = []  # kept short: the last 1,000 batches
        self._queue: collections.deque = collections.deque()
        self._arrived: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None
        self._busy = False
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="zoo-batch")

    @property
    def depth(self) -> int:
        """Requests waiting (not yet in a running batch)."""
        return len(self._queue)

    def start(self) -> None:
        """Starts the worker on the running event loop."""
        self._arrived = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        """Finishes what is queued, then stops the worker."""
        while self._queue or self._busy:
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def call(self, fn, *args):
        """Runs ``fn(*args)`` on the worker thread (loading, warm-up), in turn with batches."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def submit(self, key: Hashable, texts: Sequence[str]) -> list:
        """Queues one request; returns its results (one per text) when its batch has run.

        Raises:
            QueueFullError: ``max_queue`` requests are already waiting.
        """
        if len(self._queue) >= self.max_queue:
            raise QueueFullError(f"the queue holds {len(self._queue)} requests (the limit)")
        item = _Item(key, list(texts), asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._arrived.set()
        return await item.future

    def _take(self, key, room: int, batch: list) -> int:
        """Moves queued requests of ``key`` that fit in ``room`` texts into ``batch``."""
        taken = 0
        for item in list(self._queue):
            if item.future.done():  # timed out or cancelled while waiting: drop it
                self._queue.remove(item)
            elif item.key == key and len(item.texts) <= room - taken:
                self._queue.remove(item)
                batch.append(item)
                taken += len(item.texts)
        return taken

    async def _work(self):
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            first = self._queue.popleft()
            if first.future.done():
                continue
            batch, size = [first], len(first.texts)
            deadline = first.arrived + self.batch_timeout
            while size < self.max_batch_size:
                size += self._take(first.key, self.max_batch_size - size, batch)
                wait = deadline - time.monotonic()
                if size >= self.max_batch_size or wait <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), wait)
                except asyncio.TimeoutError:
                    size += self._take(first.key, self.max_batch_size - size, batch)
                    break
            batch = [item for item in batch if not item.future.done()]
            if not batch:
                continue
            texts = [t for item in batch for t in item.texts]
            self._busy = True
            try:
                results = await loop.run_in_executor(self._executor, self.run, first.key, texts)
            except Exception as err:  # noqa: BLE001  (handed to every request of the batch)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(err)
                continue
            finally:
                self._busy = False
            self.batch_sizes = (self.batch_sizes + [len(texts)])[-1000:]
            if self.on_batch:
                self.on_batch(len(texts))
            start = 0
            for item in batch:
                if not item.future.done():
                    item.future.set_result(results[start:start + len(item.texts)])
                start += len(item.texts)
