"""Readers for labeled post files, selected by ``--format``; plain or gzip, any path.

Every reader yields ``Record``s: a normalized ``schemas.Post`` (text, metadata, GPS point,
Twitter place) and, for generic files, an explicit location id. Lines that cannot be read
are counted by reason in ``Dataset.skipped``, never silently dropped.

Formats:
    twitter-jsonl  raw Twitter API v1.1/v2 JSON, one object per line
    latlon-tsv     ``lat<TAB>lon<TAB>text`` (VarDial SMG)
    nl-tsv         ``text<TAB>"lon lat"<TAB>user<TAB>date`` (Dutch/Belgian 2015 tweets)
    jsonl, csv     a ``text`` column plus ``lat``/``lon`` or ``location_id``; optional
                   ``id``, ``user_id`` and the other ``schemas.Post`` metadata fields
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas.posts import Coordinates, Post
from schemas.twitter import ControlMessage, InvalidPost, parse_post


@dataclass(frozen=True)
class Record:
    post: Post
    location_id: str | None = None

    @property
    def point(self) -> tuple[float, float] | None:
        c = self.post.coordinates
        return (c.lat, c.lon) if c else None


@dataclass
class Dataset:
    name: str
    records: list[Record]
    skipped: Counter[str] = field(default_factory=Counter)
    has_users: bool = False


class SkipLine(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def open_text(path: Path) -> io.TextIOBase:
    """Open plain or gzip text by content (magic bytes), not by file name."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files, folders (their files, sorted) and glob patterns, in order."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(
                sorted(
                    f
                    for f in path.iterdir()
                    if f.is_file() and not f.name.startswith((".", "README"))
                )
            )
        elif path.exists():
            out.append(path)
        else:
            matches = sorted(Path(m) for m in glob.glob(str(p)))
            if not matches:
                raise FileNotFoundError(f"no data at {p}")
            out.extend(matches)
    return out


# --------------------------------------------------------------------------- line parsers
def _twitter(line: str, where: str) -> Record:
    try:
        return Record(parse_post(line))
    except ControlMessage as exc:
        raise SkipLine(f"control-{exc.kind}") from exc


def _point(lat: Any, lon: Any) -> Coordinates:
    try:
        return Coordinates(lat=float(lat), lon=float(lon))
    except (TypeError, ValueError, ValidationError) as exc:
        raise SkipLine("bad-coordinates") from exc


def _latlon_tsv(line: str, where: str) -> Record:
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) < 3:
        raise SkipLine("too-few-columns")
    text = "\t".join(parts[2:]).strip()
    if not text:
        raise SkipLine("empty-text")
    return Record(Post(id=where, text=text, coordinates=_point(parts[0], parts[1])))


_NL_ZONES = {"CET": timezone(timedelta(hours=1)), "CEST": timezone(timedelta(hours=2))}


def _nl_tsv(line: str, where: str) -> Record:
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) < 4:
        raise SkipLine("too-few-columns")
    text, lonlat, user, date = parts[0].strip(), parts[1].split(), parts[2], parts[3]
    if not text:
        raise SkipLine("empty-text")
    if len(lonlat) != 2:
        raise SkipLine("bad-coordinates")
    created = None
    stamp = date.split()
    if len(stamp) >= 3:
        try:
            created = datetime.strptime(" ".join(stamp[:2]), "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=_NL_ZONES.get(stamp[2], UTC)
            )
        except ValueError:
            created = None
    # the column holds "lon lat" (longitude first), despite the source README
    coords = _point(lonlat[1], lonlat[0])
    return Record(
        Post(
            id=where,
            text=text,
            user_id=user,
            user_name=user,
            created_at=created,
            coordinates=coords,
        )
    )


_POST_FIELDS = set(Post.model_fields) - {"schema_version", "coordinates", "place", "id"}


def _generic(row: dict[str, Any], where: str) -> Record:
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise SkipLine("empty-text")
    location_id = row.get("location_id")
    location_id = str(location_id) if location_id not in (None, "") else None
    coords = None
    if row.get("lat") not in (None, "") and row.get("lon") not in (None, ""):
        coords = _point(row["lat"], row["lon"])
    if coords is None and location_id is None:
        raise SkipLine("no-label")
    fields = {k: v for k, v in row.items() if k in _POST_FIELDS and v not in (None, "")}
    try:
        post = Post(
            id=str(row.get("id") or where),
            coordinates=coords,
            **{
                k: str(v) if k not in {"created_at", "is_retweet"} else v for k, v in fields.items()
            },
        )
    except ValidationError as exc:
        raise SkipLine("invalid-field") from exc
    return Record(post, location_id)


def _jsonl(line: str, where: str) -> Record:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SkipLine("not-json") from exc
    if not isinstance(row, dict):
        raise SkipLine("not-an-object")
    return _generic(row, where)


LineParser = Callable[[str, str], Record]
LINE_FORMATS: dict[str, LineParser] = {
    "twitter-jsonl": _twitter,
    "latlon-tsv": _latlon_tsv,
    "nl-tsv": _nl_tsv,
    "jsonl": _jsonl,
}
FORMATS = (*LINE_FORMATS, "csv")


def _lines(path: Path, fmt: str) -> Iterator[tuple[str, Any]]:
    """(position, raw line or csv row) for every non-empty line of one file."""
    with open_text(path) as f:
        if fmt == "csv":
            for i, row in enumerate(csv.DictReader(f), start=2):
                yield f"{path.name}:{i}", row
            return
        for i, line in enumerate(f, start=1):
            if line.strip():
                yield f"{path.name}:{i}", line


def read_dataset(paths: str | Path | Iterable[str | Path], fmt: str, name: str = "") -> Dataset:
    """Read every file of a dataset. Unreadable lines are counted by reason."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    files = expand_paths([paths] if isinstance(paths, (str, Path)) else paths)
    if not files:
        raise FileNotFoundError(f"no files in {paths}")
    dataset = Dataset(name or files[0].parent.name, [])
    for path in files:
        for where, raw in _lines(path, fmt):
            try:
                record = _generic(raw, where) if fmt == "csv" else LINE_FORMATS[fmt](raw, where)
            except SkipLine as skip:
                dataset.skipped[skip.reason] += 1
                continue
            except InvalidPost as exc:
                dataset.skipped[exc.reason] += 1
                continue
            dataset.records.append(record)
    dataset.has_users = any(r.post.user_id for r in dataset.records)
    return dataset
