"""``contrastgeo demo``: the whole service on embedded defaults, in one command.

1. a model: trains the example model (12 US cities, 4 posts each) if ``runs/demo/model``
   does not exist, exports it to ONNX and indexes its location prototypes in Qdrant's
   embedded engine, unless that version is already served;
2. starts the embedded Kafka-protocol broker on a free loopback port and a worker;
3. replays the example's test posts into the input topic, with one post that carries GPS
   and two malformed payloads;
4. prints every geotagged event and dead letter as it arrives, then stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from pathlib import Path

MODEL = Path("runs/demo/model")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for events")


def demo_payloads() -> tuple[list[bytes], dict[str, tuple[str, str]]]:
    """The example's test posts as minimal payloads, one tweet with GPS, and bad input;
    and each post id's (text, true city)."""
    from trainer.examples import load_example

    data = load_example()
    posts = [
        {"id": f"demo-{i}", "text": ex.post.text, "user_location": ex.post.user_location}
        for i, ex in enumerate(data.test)
    ]
    truth = {
        p["id"]: (p["text"], data.locations[ex.location].name)
        for p, ex in zip(posts, data.test, strict=True)
    }
    gps = {  # a Twitter v1.1 status with a GPS point: it carries its own location
        "id_str": "demo-gps",
        "text": "Sunset over the river",
        "user": {"id_str": "1", "screen_name": "someone", "location": ""},
        "coordinates": {"type": "Point", "coordinates": [-90.0490, 35.1495]},
    }
    truth["demo-gps"] = (gps["text"], "")
    payloads = [json.dumps(p).encode() for p in [*posts, gps]]
    bad = [b"{not json", json.dumps({"id": "demo-bad", "text": 42}).encode()]
    return [*payloads, *bad], truth


def ensure_served(settings) -> str:
    """Train, export and index the example model where needed; returns the served version."""
    from contrastgeo.commands.example import train_example
    from model import ContrastGeo
    from model.prompts import load_locations
    from refit.publish import export_to_store, index_version
    from stream.index import version_of

    if not (MODEL / "config.json").exists():
        print(f"Training the example model into {MODEL} (about 20 s) ...")
        train_example(MODEL, verbose=False)
    with settings.open_index() as index:
        served = index.resolve(settings.index_alias)
        if served:  # reuse the served export when it is newer than the model folder
            manifest = settings.model_folder(version_of(served)) / "manifest.json"
            if manifest.exists() and (
                manifest.stat().st_mtime >= (MODEL / "config.json").stat().st_mtime
            ):
                return version_of(served)
        print("Exporting it to ONNX and indexing its locations ...")
        locations = load_locations(MODEL / "locations.jsonl")
        version = export_to_store(ContrastGeo.load(MODEL), settings.model_store, locations)
        index_version(settings, index, version)
        return version


async def print_events(settings, truth, expected: int, timeout: float, worker) -> int:
    """Print geotagged events and dead letters until ``expected`` inputs are accounted for."""
    from stream import kafka

    consumer = kafka.consumer(
        settings,
        settings.geotagged_topic,
        settings.dead_letter_topic,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen, deadline = 0, time.monotonic() + timeout
    try:
        while seen < expected and time.monotonic() < deadline:
            if worker.poll() is not None:
                print(f"the worker exited with code {worker.returncode}: see runs/worker.log")
                break
            batches = await consumer.getmany(timeout_ms=500)
            for record in (r for rs in batches.values() for r in rs):
                seen += 1
                print(describe(json.loads(record.value), truth))
    finally:
        await consumer.stop()
    return seen


def describe(event: dict, truth: dict[str, tuple[str, str]]) -> str:
    """One event as two lines: the input, then what the service made of it."""
    if "reason" in event:
        payload = base64.b64decode(event["payload"]).decode("utf-8", "replace")
        return f"DEAD {payload[:60]!r}\n     -> dead letter: {event['reason']} ({event['detail']})"
    text, gold = truth.get(event["post_id"], ("", ""))
    where = event["location"]
    if event["source"] != "model":
        return (
            f"GPS  {text[:60]!r}\n     -> carried its own location "
            f"({where['lat']:.3f}, {where['lon']:.3f}): published as a labeled post too"
        )
    if event["abstained"]:
        return f"?    {text[:60]!r}\n     -> unknown (abstained)"
    mark = "ok  " if where["name"] == gold else "MISS"
    runners = ", ".join(f"{c['name']} {c['score']:.2f}" for c in event["candidates"][1:3])
    return (
        f"{mark} {text[:60]!r}\n     -> {where['name']}, {where['admin']} "
        f"score {event['score']:.2f}   next: {runners}"
    )


def run(args: argparse.Namespace) -> int:
    from benchmarks.local import start_worker, stop_worker
    from stream.broker import EmbeddedBroker, ensure_topics_sync, free_port
    from stream.replay import replay
    from stream.settings import WorkerSettings

    settings = WorkerSettings()
    version = ensure_served(settings)
    Path("runs").mkdir(exist_ok=True)
    with EmbeddedBroker(log_file=Path("runs/broker.log")) as broker:
        settings = settings.model_copy(
            update={
                "broker": broker.url,
                "web_port": free_port(),
                "session_timeout_s": 2.0,
                "heartbeat_interval_s": 0.3,
                "rebalance_timeout_s": 2.0,
            }
        )
        ensure_topics_sync(settings)
        print(f"Broker on {broker.url}; starting a worker serving model {version} ...")
        worker = start_worker(settings, Path("runs/worker.log"))
        try:
            payloads, truth = demo_payloads()
            asyncio.run(replay(settings, payloads))
            print(f"Replayed {len(payloads)} payloads into {settings.input_topic!r}:\n")
            seen = asyncio.run(print_events(settings, truth, len(payloads), args.timeout, worker))
        finally:
            code = stop_worker(worker)
    print(
        f"\n{seen} of {len(payloads)} inputs accounted for; worker stopped (exit {code}). "
        "Logs: runs/worker.log"
    )
    return 0 if seen == len(payloads) else 1
