"""Write the JSON Schema of every event into ``schemas/json/`` (``python -m schemas.generate``).

``--check`` writes nothing and exits 1 when a checked-in file differs from the models (the
tests run the same comparison, so a model change without regenerated files fails CI).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from schemas.events import EVENTS

FOLDER = Path(__file__).parent / "json"


def rendered() -> dict[str, str]:
    """File name -> JSON text of each event's schema (serialization mode: what is on the wire)."""
    return {
        f"{name}.schema.json": json.dumps(
            model.model_json_schema(mode="serialization"), indent=2, sort_keys=True
        )
        + "\n"
        for name, model in EVENTS.items()
    }


def stale(folder: Path = FOLDER) -> list[str]:
    """Files that are missing or differ from the models."""
    return [
        name
        for name, text in rendered().items()
        if not (folder / name).exists() or (folder / name).read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift")
    args = parser.parse_args(argv)
    if args.check:
        drift = stale()
        for name in drift:
            sys.stderr.write(f"stale: schemas/json/{name} (run python -m schemas.generate)\n")
        return 1 if drift else 0
    FOLDER.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (FOLDER / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
