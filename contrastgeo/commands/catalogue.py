"""``contrastgeo catalogue``: write a catalogue of candidate places from GeoNames.

The file (JSON lines, most populous first) holds every place with its id, name, admin-1
name and code, country name and code, coordinates and population; a district merged into
its city carries ``merged_into`` (the city's id). ``fit``, ``benchmark``, ``refit-bench``,
``index`` and the refit job read it with ``--catalogue FILE`` (the refit job:
``CONTRASTGEO_REFIT_CATALOGUE``).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from contrastgeo.commands.data_args import str_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--countries",
        type=str_list,
        required=True,
        help="ISO country codes, comma-separated, e.g. US or NL,BE",
    )
    parser.add_argument(
        "--admin1",
        type=str_list,
        default=None,
        help="only these admin-1 areas, codes as GeoNames writes them (US states: IA,NE)",
    )
    parser.add_argument(
        "--min-population",
        type=int,
        default=5000,
        help="smallest place kept (default 5000; GeoNames ships places down to 500)",
    )
    parser.add_argument(
        "--merge-km",
        type=float,
        default=8.0,
        help="merge a place into a 5x larger one within this distance (a district into its "
        "city; default 8, 0 = no merging)",
    )
    parser.add_argument("--out", type=Path, required=True, help="catalogue file to write")


def run(args: argparse.Namespace) -> int:
    from trainer.data.catalogue import build_catalogue, save_catalogue

    try:
        catalogue = build_catalogue(
            args.countries, args.min_population, merge_km=args.merge_km, admin1=args.admin1
        )
    except ValueError as exc:
        raise SystemExit(f"catalogue: {exc}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_catalogue(args.out, catalogue)
    by_country = Counter(loc.country for loc in catalogue.locations)
    merged = len(catalogue.places) - len(catalogue.locations)
    print(
        f"wrote {args.out}: {len(catalogue.locations)} locations "
        f"({', '.join(f'{c} {n}' for c, n in by_country.most_common())}), "
        f"{merged} district(s) merged into their city"
    )
    return 0
