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

Every event is *held* from the moment it is gathered until its batch's outcomes are
delivered (``hold``/``release``): marked acked without telling the consumer, so that
faust, on shutdown, neither commits it (the ack it gives whatever was handed out does
nothing) nor waits for it (its wait for unacked messages skips acked ones; a gathered
event that will never be processed would otherwise hold up the stop).
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
        self.room = asyncio.Event()  # set while fewer than ``cap`` are waiting
        self.room.set()
        self._items: deque[T] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: T) -> bool:
        """Add an item unless ``cap`` items are already waiting (then False)."""
        if len(self._items) >= self.cap:
            self.room.clear()
            return False
        self._items.append(item)
        self.arrived.set()
        return True

    async def put(self, item: T) -> None:
        """Add an item, first waiting while ``cap`` items are already waiting."""
        while not self.offer(item):
            await self.room.wait()

    def take_nowait(self) -> list[T]:
        """Everything waiting, at most ``cap`` items, oldest first (empty if none)."""
        batch = [self._items.popleft() for _ in range(min(self.cap, len(self._items)))]
        if not self._items:
            self.arrived.clear()
        self.room.set()
        return batch

    def clear(self) -> int:
        """Drop every waiting item (unprocessed, uncommitted); returns how many. faust's
        flow control calls it where it clears its own queues (``take_batches``)."""
        dropped = len(self._items)
        self._items.clear()
        self.arrived.clear()
        self.room.set()
        return dropped

    async def take(self) -> list[T]:
        """The next batch: at once if anything is waiting, else as soon as one item is."""
        while not self._items:
            await self.arrived.wait()
        return self.take_nowait()


def hold(events: list[Any]) -> None:
    """Keep events out of faust's commits and shutdown wait (see the module)."""
    for event in events:
        event.message.acked = True


def release(events: list[Any]) -> None:
    """The events' outcomes are delivered: their acks count again."""
    for event in events:
        event.message.acked = False


async def take_batches(stream: Any, gathered: Gathered[Any]) -> AsyncIterator[list[Any]]:
    """Batches of a faust stream's events under the adaptive policy (see the module).

    Each batch is handed out held: the caller ``release``s it once its outcomes are
    delivered and acks its events (they are acked again, harmlessly, when the caller's loop
    body is done). A batch never released (the stream stopped mid-batch) and the events
    still gathered when the stream stops are never acked: whoever owns their partitions
    next reads them again. As with faust's ``take_events``, the stream's own acks are off.
    ``gathered`` joins the app's flow control, which clears it where faust clears its own
    queues of fetched messages: when a rebalance starts (before faust waits for what is in
    flight) and when consumption resumes after it, then reading again from the committed
    offsets. So no batch of a partition that moved starts, on the old owner, after its
    revocation.
    """
    flow = stream.app.flow_control
    flow.manage_queue(gathered)

    async def gather(value: Any) -> Any:
        event = stream.current_event
        if event is None:
            raise RuntimeError("a stream processor ran without a current event")
        hold([event])
        if not flow.is_active():
            # a rebalance began after faust read this event: it is dropped like faust's own
            # queued ones (held, so never committed; read again from the committed offset)
            return value
        while not gathered.offer(event) and not stream.should_stop:
            # full: wait for the next batch to be taken, or for the stream to stop (a plain
            # wait here would hold up the worker's shutdown while a batch is retried)
            await stream.wait(gathered.room)
        return value

    stream.enable_acks = False
    stream.add_processor(gather)
    # faust's own take_events reads the stream in the background this way: the processor
    # above sees every event, and the loop below only hands batches out
    stream._enable_passive(aiter(stream.channel))
    while not stream.should_stop:
        await stream.wait_for_stopped(gathered.arrived)
        if not flow.is_active():  # a rebalance is under way: no new batch until it ends
            gathered.clear()
            continue
        batch = gathered.take_nowait()
        if not batch:
            continue
        try:
            yield batch
        finally:
            for event in batch:
                await stream.ack(event)
