"""``contrastgeo worker``: the streaming geotagger (a faust worker).

Consumes ``CONTRASTGEO_INPUT_TOPIC`` in the consumer group ``CONTRASTGEO_GROUP_ID``,
serves the model version the index alias points to, and publishes geotagged, labeled and
dead-letter events. Every setting is an environment variable (``stream/settings.py``).
SIGTERM stops it: a batch in hand is left uncommitted (its outputs may be published
already) and is read again by whichever worker takes its partition (at least once; the
events' keys deduplicate).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-create-topics",
        action="store_true",
        help="do not create missing topics (when the cluster's topics are managed elsewhere)",
    )


def run(args: argparse.Namespace) -> int:
    import faust
    import structlog

    from stream.app import create_app
    from stream.broker import ensure_topics_sync
    from stream.settings import WorkerSettings

    settings = WorkerSettings()
    log = structlog.get_logger("contrastgeo.worker")
    if not args.no_create_topics:
        try:
            ensure_topics_sync(settings)
        except Exception as exc:  # e.g. no permission on a managed cluster
            log.warning("could not create topics; expecting them to exist", error=repr(exc))
    app = create_app(settings)
    # our structlog lines go to stderr as they are; faust's own logging keeps its format
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()  # returns when the worker stops (SIGTERM/SIGINT)
    return 0
