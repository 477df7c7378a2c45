"""Dynamic batching: requests to one model that arrive within a short wait are merged into
one call of the estimator, run on the model's own worker thread (off the event loop;
TensorFlow releases the GIL while it computes), and the outputs are split back by rows."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = ["Batcher"]


@dataclass
class _Item:
    key: tuple
    arrays: dict
    rows: int
    options: tuple
    future: asyncio.Future


def _key(arrays: dict, options: tuple) -> tuple:
    """Requests merge when their options, dtypes and row shapes agree."""
    return (options, tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(arrays.items())))


class Batcher:
    """The queue and worker thread of one model.

    Parameters
    ----------
    servable : Servable
    wait_s : float
        How long the first request of a batch waits for others.
    max_rows : int
        Rows at most in a merged call (a single larger request runs alone).
    observe : callable(rows, requests)
        Told the size of every model call (the metrics).
    """

    def __init__(self, servable, *, wait_s: float, max_rows: int, observe=None):
        self.servable = servable
        self.wait_s = wait_s
        self.max_rows = max_rows
        self.observe = observe
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"deepae-{servable.name}")
        self._loop = self._queue = self._task = None

    async def submit(self, arrays: dict, rows: int, options: tuple) -> dict:
        """The model's outputs for these rows (the rows on the first axis of each array)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first request, or a new event loop (tests)
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._work())
        future = loop.create_future()
        self._queue.put_nowait(_Item(_key(arrays, options), arrays, rows, options, future))
        return await future

    async def _collect(self, pending: list) -> None:
        """Wait up to `wait_s` from the first request for others, then take all queued."""
        loop = asyncio.get_running_loop()
        if not pending:
            pending.append(await self._queue.get())
            deadline = loop.time() + self.wait_s
            while sum(i.rows for i in pending) < self.max_rows:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    pending.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())

    async def _work(self) -> None:
        pending: list[_Item] = []
        while True:
            await self._collect(pending)
            first, batch, rest, rows = pending[0], [], [], 0
            for item in pending:
                fits = not batch or rows + item.rows <= self.max_rows
                if item.key == first.key and fits:
                    batch.append(item)
                    rows += item.rows
                else:
                    rest.append(item)
            pending = rest
            live = [i for i in batch if not i.future.done()]  # a client that left: skipped
            if live:
                await self._run(live)

    async def _run(self, batch: list) -> None:
        """One model call for `batch`; if it fails and holds several requests, each runs
        alone, so that one request's bad data fails only that request."""
        loop = asyncio.get_running_loop()
        try:
            arrays = batch[0].arrays if len(batch) == 1 else {
                n: np.concatenate([i.arrays[n] for i in batch]) for n in batch[0].arrays}
            out = await loop.run_in_executor(self.executor, self.servable.run, arrays,
                                             batch[0].options)
            cuts = np.cumsum([i.rows for i in batch])[:-1]
            parts = {n: np.split(a, cuts) for n, a in out.items()}
        except Exception as e:  # noqa: BLE001 - given to the requests' handlers
            if len(batch) > 1:
                for item in batch:
                    await self._run([item])
            else:
                _settle(batch[0].future, error=e)
            return
        if self.observe is not None:
            self.observe(sum(i.rows for i in batch), len(batch))
        for j, item in enumerate(batch):
            _settle(item.future, result={n: p[j] for n, p in parts.items()})

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _settle(future: asyncio.Future, *, result=None, error=None) -> None:
    if future.done():  # the request was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
