"""``contrastgeo broker``: run the embedded Kafka-protocol broker (tansu) on loopback until
interrupted, with the service's topics created. For development: in memory by default
(nothing survives a restart); ``--storage s3://BUCKET/`` keeps topics, records and committed
offsets in an S3 bucket (endpoint and credentials from ``AWS_ENDPOINT``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``; ``AWS_ALLOW_HTTP=true``
for a plain-HTTP endpoint)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=9092, help="default 9092 (0 = any free)")
    parser.add_argument(
        "--storage",
        default="memory://tansu/",
        help="tansu storage engine: memory://tansu/ (default) or s3://BUCKET/ (durable)",
    )


class _Stop(Exception):
    pass


def _stop(signum, frame) -> None:
    raise _Stop(signum)


def run(args: argparse.Namespace) -> int:
    """Until Ctrl-C, SIGTERM or SIGHUP: each stops tansu before the command exits (tansu
    runs in its own session, so a terminal's signals do not reach it; if this process is
    killed outright, Linux sends tansu SIGTERM: ``stream.broker``)."""
    import signal
    import time

    from stream.broker import EmbeddedBroker, ensure_topics_sync
    from stream.settings import ServiceSettings

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    try:
        with EmbeddedBroker(args.port, storage=args.storage) as broker:
            print(f"tansu pid {broker.process.pid}", flush=True)
            settings = ServiceSettings(broker=broker.url)
            ensure_topics_sync(settings)
            print(f"broker listening on {broker.url}; export CONTRASTGEO_BROKER={broker.url}")
            print("Ctrl-C stops it.", flush=True)
            while broker.process and broker.process.poll() is None:
                time.sleep(0.5)
    except (KeyboardInterrupt, _Stop):
        pass  # leaving the ``with`` stopped tansu
    return 0
