"""The small example shipped with the project: 12 US cities, 72 hand-written posts.

Used by ``contrastgeo example`` (and the streaming demo) and by tests that need a tiny
labeled set. The posts were written for this project (no real user data); 4 per city are
marked ``train`` (the few-shot support set) and 2 ``test``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from model.prompts import Location, PostFields, parse_locations
from trainer.train import Example


@dataclass(frozen=True)
class ExampleData:
    locations: list[Location]
    train: list[Example]
    test: list[Example]


def load_example() -> ExampleData:
    folder = resources.files("trainer") / "example_data"
    locations = parse_locations((folder / "locations.jsonl").read_text(encoding="utf-8"))
    index = {loc.id: i for i, loc in enumerate(locations)}
    splits: dict[str, list[Example]] = {"train": [], "test": []}
    for line in (folder / "posts.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        post = PostFields(text=row["text"], user_location=row.get("user_location", ""))
        splits[row["split"]].append(Example(post, index[row["location_id"]]))
    return ExampleData(locations, splits["train"], splits["test"])
