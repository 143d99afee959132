"""Micro-batching: concurrent requests share one call of an async batch function, with a short window and a bounded queue.

The service's batch function computes on the event loop's own thread. Two alternatives were measured on the
2-core test machine and dropped: a worker thread was 4x slower per request (every PyTorch op releases the GIL,
and getting it back from a busy event loop costs up to the 5 ms switch interval, many times per forward); a
generator child process fed over a socket pair cost ~85 us more CPU per request in the server for the framing
and copies, and lost to this design when the cores were busy. Blocking the loop for one batch (a few ms) is
cheapest; `--workers N` runs N such processes to use N cores.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from toolkit.errors import DuetError

logger = logging.getLogger(__name__)


class QueueFull(DuetError):
    """More requests are pending than the queue admits; the caller answers 503 with Retry-After."""


@dataclass
class _Job:
    payload: Any
    arrived: float
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Collects payloads into batches and awaits `process(payloads) -> results` once per batch.

    A batch closes when it holds `max_batch` payloads or when its first payload has waited `window_s`
    since it arrived (a busy worker therefore adds no extra wait). A result that is an Exception is raised
    to that payload's caller alone. With `enabled=False` every payload is processed on its own, through
    the same queue, so the two modes differ only in batching. At most `capacity` payloads may
    be pending (queued or being processed); `submit` raises QueueFull beyond that.
    """

    def __init__(self, process: Callable[[list[Any]], Awaitable[Sequence[Any]]], *, window_s: float, max_batch: int,
                 capacity: int, enabled: bool = True, on_batch: Callable[[int, float], None] | None = None):
        self.process, self.window_s, self.capacity = process, window_s, capacity
        self.max_batch = max_batch if enabled else 1
        self.enabled = enabled
        self.on_batch = on_batch
        self.pending = 0
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="duet-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = None

    async def submit(self, payload: Any) -> Any:
        """The result of `payload`'s share of a batch (raises its Exception result, or QueueFull)."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        if self.pending >= self.capacity:
            raise QueueFull(f"{self.pending} generate requests are pending (the queue holds {self.capacity})")
        future = asyncio.get_running_loop().create_future()
        self.pending += 1
        self._queue.put_nowait(_Job(payload, time.monotonic(), future))
        return await future

    async def _loop(self) -> None:
        queue = self._queue
        while True:
            first = await queue.get()
            batch = [first]
            if self.max_batch > 1:
                delay = first.arrived + self.window_s - time.monotonic()
                if delay > 0 and queue.qsize() < self.max_batch - 1:
                    await asyncio.sleep(delay)
                while len(batch) < self.max_batch and not queue.empty():
                    batch.append(queue.get_nowait())
            started = time.monotonic()
            try:
                results = await self.process([job.payload for job in batch])
            except Exception as err:  # a bug in `process`: every caller of the batch gets it
                logger.exception("batch of %d failed", len(batch))
                results = [err] * len(batch)
            if len(results) != len(batch):
                logger.error("batch function returned %d results for %d payloads", len(results), len(batch))
                results = [RuntimeError("batch function returned the wrong number of results")] * len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch), time.monotonic() - started)
            for job, result in zip(batch, results):
                self.pending -= 1
                if job.future.done():  # the caller went away
                    continue
                if isinstance(result, Exception):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
            await asyncio.sleep(0)  # let the answered handlers send before the next batch forms
