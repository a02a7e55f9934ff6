"""Adaptive batching: the encoder takes what has arrived the moment it is free.

Posts that arrive while a batch is being processed gather, up to ``cap``; when that batch
is done, all of them (at most ``cap``) form the next one at once. An idle worker therefore
encodes a lone post without waiting for company, and a loaded one encodes larger batches,
which use the encoder better, up to the cap. There is no timer: a batch never waits to fill.
When ``cap`` posts are gathered, the stream stops reading until the next batch is taken
(back-pressure: the rest stay in the consumer's queue, uncommitted).

``take_batches`` drives a faust stream with this policy, in place of faust's
``take_events(max_, within)``, which waits up to ``within`` for a full batch and reads
nothing while a batch is processed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Gathered(Generic[T]):
    """Items waiting for the next batch (at most ``cap``)."""

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError(f"a batch holds at least one item, not {cap}")
        self.cap = cap
        self.arrived = asyncio.Event()  # set while at least one item is waiting
        self._room = asyncio.Event()  # set while fewer than ``cap`` are waiting
        self._room.set()
        self._items: deque[T] = deque()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        """Add an item, first waiting while ``cap`` items are already waiting."""
        while len(self._items) >= self.cap:
            self._room.clear()
            await self._room.wait()
        self._items.append(item)
        self.arrived.set()

    def take_nowait(self) -> list[T]:
        """Everything waiting, at most ``cap`` items, oldest first (empty if none)."""
        batch = [self._items.popleft() for _ in range(min(self.cap, len(self._items)))]
        if not self._items:
            self.arrived.clear()
        self._room.set()
        return batch

    async def take(self) -> list[T]:
        """The next batch: at once if anything is waiting, else as soon as one item is."""
        while not self._items:
            await self.arrived.wait()
        return self.take_nowait()


async def take_batches(stream: Any, cap: int) -> AsyncIterator[list[Any]]:
    """Batches of a faust stream's events under the adaptive policy (see the module).

    As with faust's ``take_events``, the stream's own acks are off and each event is acked
    after its batch has been handled (the caller's loop body has run), so an offset is
    committed only once its batch is done; events still gathered when the stream stops are
    never acked and are read again by whoever owns the partition next.
    """
    gathered: Gathered[Any] = Gathered(cap)

    async def gather(value: Any) -> Any:
        event = stream.current_event
        if event is None:
            raise RuntimeError("a stream processor ran without a current event")
        await gathered.put(event)
        return value

    stream.enable_acks = False
    stream.add_processor(gather)
    # faust's own take_events reads the stream in the background this way: the processor
    # above sees every event, and the loop below only hands batches out
    stream._enable_passive(aiter(stream.channel))
    while not stream.should_stop:
        await stream.wait_for_stopped(gathered.arrived)
        batch = gathered.take_nowait()
        if not batch:
            continue
        try:
            yield batch
        finally:
            for event in batch:
                await stream.ack(event)
