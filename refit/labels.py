"""The label store: every ``LabeledPost`` the workers published, once each, on disk.

SQLite, because the refit job needs exactly what it offers in one file on its volume:
transactions (a batch is durable before its Kafka offsets are committed), a primary key
on the post id (replays and duplicates from at-least-once delivery are ignored) and
nothing to run beside the job. The store is a cache of the labeled topic: if the volume is
lost, ``ingest`` with a new consumer group (or reset offsets) rebuilds it from the topic as
far as the topic's retention allows.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import structlog

from schemas.events import LabeledPost

log = structlog.get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS labeled_posts (
    post_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,           -- the LabeledPost as published (JSON)
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    source TEXT NOT NULL,
    received_at TEXT NOT NULL,
    stored_at REAL NOT NULL
)
"""


class LabelStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # durable at commit, before offsets are
        self.db.execute(SCHEMA)
        self.db.commit()

    def add(self, events: Iterable[LabeledPost]) -> int:
        """Store new posts in one transaction; returns how many were new."""
        now = time.time()
        rows = [
            (e.post.id, e.model_dump_json(), e.lat, e.lon, e.source, e.received_at.isoformat(), now)
            for e in events
        ]
        with self.db:  # one transaction: all or nothing
            before = self.db.total_changes
            self.db.executemany(
                "INSERT OR IGNORE INTO labeled_posts VALUES (?, ?, ?, ?, ?, ?, ?)", rows
            )
            return self.db.total_changes - before

    def prune(self, older_than_s: float) -> int:
        """Delete the posts stored more than ``older_than_s`` seconds ago; returns how many."""
        with self.db:
            cursor = self.db.execute(
                "DELETE FROM labeled_posts WHERE stored_at < ?", (time.time() - older_than_s,)
            )
        return cursor.rowcount

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM labeled_posts").fetchone()[0]

    def all(self) -> list[LabeledPost]:
        # by post id: a stable order whatever the order of arrival (tweet ids grow with time)
        rows = self.db.execute("SELECT event FROM labeled_posts ORDER BY post_id")
        return [LabeledPost.model_validate_json(event) for (event,) in rows]

    def close(self) -> None:
        self.db.close()


async def ingest(
    settings, store: LabelStore, group_id: str, idle_s: float = 5.0, max_s: float = 600.0
) -> tuple[int, int]:
    """Read the labeled topic with the refit job's own consumer group until caught up
    (nothing new for ``idle_s``), storing each batch and *then* committing its offsets.
    Returns (events read, new posts stored). Events that do not parse are logged and
    skipped (they cannot be labels)."""
    from stream import kafka

    consumer = kafka.consumer(
        settings,
        settings.labeled_topic,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(1000 * settings.session_timeout_s),
        heartbeat_interval_ms=int(1000 * settings.heartbeat_interval_s),
    )
    await consumer.start()
    read = stored = 0
    start = last = time.monotonic()
    try:
        while time.monotonic() - last < idle_s and time.monotonic() - start < max_s:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                continue
            last = time.monotonic()
            events = []
            for record in records:
                try:
                    events.append(LabeledPost.model_validate_json(record.value))
                except ValueError as exc:
                    log.error(
                        "unreadable labeled event skipped",
                        offset=record.offset,
                        error=str(exc)[:200],
                    )
            read += len(records)
            stored += store.add(events)  # a few ms: blocking the loop briefly is fine
            await consumer.commit()  # only after the store committed the batch
    finally:
        await consumer.stop()
    log.info("labels ingested", read=read, new=stored, total=store.count())
    return read, stored
