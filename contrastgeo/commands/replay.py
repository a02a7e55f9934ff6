"""``contrastgeo replay FILE``: feed a file of posts into the input topic.

JSON-lines formats (``twitter-jsonl``, ``jsonl``; plain or gzip) are sent line by line,
byte for byte, exactly as a live stream would carry them (malformed lines included: the
worker dead-letters them). The other formats are read by the dataset readers and sent as
normalized posts (``schemas.Post`` JSON).
"""

from __future__ import annotations

import argparse

from contrastgeo.commands.data_args import FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="file(s), folder(s) or glob(s)")
    parser.add_argument("--format", choices=FORMATS, default="twitter-jsonl")
    parser.add_argument("--limit", type=int, default=0, help="send at most N posts (0 = all)")
    parser.add_argument("--rate", type=float, default=0.0, help="posts per second (0 = max)")
    parser.add_argument("--topic", default=None, help="default: CONTRASTGEO_INPUT_TOPIC")


def payloads(files: list[str], fmt: str, limit: int = 0):
    """The payloads of a file as the input topic would carry them."""
    from itertools import islice

    from trainer.data.readers import expand_paths, open_text, read_dataset

    if fmt in ("twitter-jsonl", "jsonl"):
        lines = (
            line.rstrip("\n").encode()
            for path in expand_paths(files)
            for line in open_text(path)
            if line.strip()
        )
    else:
        lines = (r.post.model_dump_json().encode() for r in read_dataset(files, fmt).records)
    return islice(lines, limit or None)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from stream.broker import ensure_topics
    from stream.replay import replay
    from stream.settings import ServiceSettings

    settings = ServiceSettings()

    async def go() -> list[tuple[int, int]]:
        await ensure_topics(settings)
        return await replay(
            settings, payloads(args.files, args.format, args.limit), args.rate, args.topic
        )

    sent = len(asyncio.run(go()))
    print(f"sent {sent} payload(s) to {args.topic or settings.input_topic} on {settings.broker}")
    return 0
