"""``contrastgeo broker``: run the embedded Kafka-protocol broker (tansu, in memory) on
loopback until interrupted, with the service's topics created. For development only:
nothing it holds survives a restart."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=9092, help="default 9092 (0 = any free)")


def run(args: argparse.Namespace) -> int:
    import time

    from stream.broker import EmbeddedBroker, ensure_topics_sync
    from stream.settings import Settings

    with EmbeddedBroker(args.port) as broker:
        settings = Settings(broker=broker.url)
        ensure_topics_sync(settings)
        print(f"broker listening on {broker.url}; export CONTRASTGEO_BROKER={broker.url}")
        print("Ctrl-C stops it.")
        try:
            while broker.process and broker.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0
