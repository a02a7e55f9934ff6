"""``contrastgeo index``: build a model version's location prototypes in the vector index
and point the served alias at them; or add prompt-only locations to the served collection.

The index is Qdrant's embedded engine at ``CONTRASTGEO_INDEX_PATH`` (default runs/index)
unless ``CONTRASTGEO_QDRANT_URL`` names a server.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", default=None, help="model version (default: newest)")
    parser.add_argument(
        "--locations", type=Path, default=None, help="JSONL of locations (default: the model's)"
    )
    parser.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        help="serve every candidate location of this catalogue file (`contrastgeo "
        "catalogue`) instead of the model's locations",
    )
    parser.add_argument(
        "--add",
        type=Path,
        default=None,
        help="JSONL of new locations to add, prompt-only, to the served collection",
    )
    parser.add_argument(
        "--no-switch", action="store_true", help="build the collection, leave the alias"
    )
    parser.add_argument(
        "--announce",
        action="store_true",
        help="publish ModelUpdated on CONTRASTGEO_BROKER so that running workers reload now "
        "(they also re-read the alias every CONTRASTGEO_RELOAD_POLL_S)",
    )


def newest_version(store: Path) -> str:
    versions = sorted(p.name for p in store.glob("*") if (p / "manifest.json").exists())
    if not versions:
        raise SystemExit(f"no exported model in {store}: run `contrastgeo export` first")
    return versions[-1]  # versions start with their export time


def locations_from_args(args: argparse.Namespace):
    """``--locations`` or ``--catalogue``'s locations; None = the model's own."""
    from contrastgeo.commands.data_args import read_catalogue
    from model.prompts import load_locations

    if args.locations and args.catalogue:
        raise SystemExit("pass --locations or --catalogue, not both")
    if args.catalogue:
        return read_catalogue(args.catalogue).locations
    return load_locations(args.locations) if args.locations else None


def run(args: argparse.Namespace) -> int:
    from model.prompts import load_locations
    from refit.publish import index_version
    from stream.prototypes import add_locations
    from stream.settings import ServiceSettings

    settings = ServiceSettings()
    with settings.open_index() as index:
        if args.add:
            model = settings.load_model(settings.version_in_service(index))
            new = load_locations(args.add)
            add_locations(index, settings.index_alias, model, new)
            print(f"added {len(new)} prompt-only location(s) to model {model.version}")
            return 0
        version = args.version or newest_version(settings.model_store)
        locations = locations_from_args(args)
        previous = index.resolve(settings.index_alias)
        try:
            collection = index_version(settings, index, version, locations, not args.no_switch)
        except FileNotFoundError as exc:
            raise SystemExit(str(exc)) from None
        print(
            f"indexed {index.count(collection)} locations in {collection}"
            + ("" if args.no_switch else f"; {settings.index_alias!r} -> {collection}")
        )
    if args.announce and not args.no_switch:
        import asyncio

        from refit.publish import announce
        from stream.index import version_of

        asyncio.run(
            announce(settings, version, collection, version_of(previous) if previous else None)
        )
        print(f"announced on {settings.model_updates_topic}")
    return 0
