"""``contrastgeo geotag FILE``: geotag a file of posts with the served model, as a worker would.

Each post of the file goes through the worker's own path (``Geotagger.process``): a post
that carries its GPS point or a city place keeps it (``source`` gps or place), the others
are geolocated by the served model (``source`` model), and an input that is not a post
gets a dead letter with its reason. JSON-lines files (raw Twitter v1.1 / v2 or minimal
``{"id": ..., "text": ...}`` posts; plain or gzip) are read line by line as a stream would
carry them; the other formats through the dataset readers (as ``contrastgeo replay``).

Writes one ``GeotaggedPost`` JSON line per post to ``--out`` (default: standard output)
and the dead letters to ``--dead-letters``; a dead letter's ``input.offset`` is the
input's position in the file (0-based, blank lines not counted). Needs a served model:
``contrastgeo export`` and ``contrastgeo index`` first (the same ``CONTRASTGEO_*`` settings
as the worker).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contrastgeo.commands.data_args import FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="file(s), folder(s) or glob(s) of posts")
    parser.add_argument("--format", choices=FORMATS, default="twitter-jsonl")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines (default: stdout)")
    parser.add_argument(
        "--dead-letters", type=Path, default=None, help="JSON lines of the inputs refused"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="posts per batch")
    parser.add_argument("--limit", type=int, default=0, help="geotag at most N posts (0 = all)")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    from collections import Counter
    from itertools import islice

    from tqdm.auto import tqdm

    from contrastgeo.commands.replay import payloads
    from stream.geotagger import Geotagger, NoModelServed
    from stream.routing import Message
    from stream.settings import WorkerSettings

    if args.batch_size < 1:
        raise SystemExit(f"--batch-size must be at least 1, not {args.batch_size}")
    settings = WorkerSettings()
    geotagger = Geotagger(settings)
    counts: Counter[str] = Counter()
    source = ",".join(args.files)

    async def go(out, dead) -> None:
        await geotagger.reload()
        inputs = enumerate(payloads(args.files, args.format, args.limit))
        with tqdm(desc="geotagging", unit="post", file=sys.stderr) as progress:
            while chunk := list(islice(inputs, args.batch_size)):
                messages = [Message(source, 0, n, None, value) for n, value in chunk]
                batch = await geotagger.process(messages)
                for output in batch.outputs:
                    if output.topic == settings.geotagged_topic:
                        out.write(output.value + b"\n")
                        counts["abstained" if output.abstained else output.source] += 1
                    elif output.topic == settings.dead_letter_topic:
                        counts["dead letters"] += 1
                        if dead is not None:
                            dead.write(output.value + b"\n")
                progress.update(len(messages))

    with contextlib.ExitStack() as files:
        out = files.enter_context(open(args.out, "wb")) if args.out else sys.stdout.buffer
        dead = files.enter_context(open(args.dead_letters, "wb")) if args.dead_letters else None
        try:
            asyncio.run(go(out, dead))
        except NoModelServed as exc:
            raise SystemExit(f"no model is served: {exc}") from None
        finally:
            geotagger.close()
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no input"
    print(f"geotagged {source}: {summary}", file=sys.stderr)
    return 0
