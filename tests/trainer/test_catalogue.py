"""Catalogue files: ``contrastgeo catalogue`` on real GeoNames rows, their round trip, clear
errors on a bad file, and ``--catalogue`` reaching the task, the refit job and the index."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from contrastgeo.cli import main
from trainer.data.catalogue import build_catalogue, load_catalogue, save_catalogue


@pytest.fixture(scope="module")
def iowa_nebraska(tmp_path_factory):
    path = tmp_path_factory.mktemp("catalogue") / "ia-ne.jsonl"
    assert main(["catalogue", "--countries", "US", "--admin1", "IA,NE", "--out", str(path)]) == 0
    return path


def test_the_catalogue_command_writes_real_geonames_places(iowa_nebraska):
    rows = [json.loads(line) for line in iowa_nebraska.read_text().splitlines()]
    assert {r["admin_code"] for r in rows} == {"IA", "NE"}
    assert {r["country_code"] for r in rows} == {"US"}
    assert all(r["population"] >= 5000 for r in rows)
    populations = [r["population"] for r in rows]
    assert populations == sorted(populations, reverse=True)  # most populous first
    by_name = {r["name"]: r for r in rows if r["merged_into"] is None}
    assert by_name["Des Moines"]["admin"] == "Iowa" and by_name["Omaha"]["admin"] == "Nebraska"
    assert by_name["Ames"]["lat"] == pytest.approx(42.03, abs=0.05)
    assert "Chicago" not in by_name and "Memphis" not in by_name
    # the file serves the same candidates as building the catalogue in process
    built = build_catalogue(["US"], admin1=["IA", "NE"])
    assert load_catalogue(iowa_nebraska).locations == built.locations
    assert 100 < len(built.locations) < 200


def test_a_catalogue_file_round_trips_with_its_merged_districts(tmp_path):
    serbia = build_catalogue(["RS"])
    path = tmp_path / "rs.jsonl"
    save_catalogue(path, serbia)
    loaded = load_catalogue(path)
    assert loaded.places == serbia.places
    assert np.array_equal(loaded.parent, serbia.parent)
    assert loaded.locations == serbia.locations
    rows = {r["name"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert rows["Zemun"]["merged_into"] == rows["Belgrade"]["id"]  # a district of Belgrade
    idx = loaded.snap(np.array([44.8458]), np.array([20.40116]), 25.0)[0]
    assert loaded.locations[idx].name == "Belgrade"


GOOD = {"id": "1", "name": "Ames", "lat": 42.0, "lon": -93.6, "population": 66000}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{not json"], ":1: not a catalogue place"),
        ([json.dumps(GOOD), json.dumps({**GOOD, "id": "2", "mayor": "x"})], ":2: .*mayor"),
        ([json.dumps({**GOOD, "name": ""})], "id and name are required"),
        ([json.dumps({**GOOD, "lat": 95.0})], "out of range"),
        ([json.dumps(GOOD), json.dumps(GOOD)], "appears twice"),
        ([json.dumps({**GOOD, "merged_into": "9"})], "not a candidate location"),
        ([], "no places"),
    ],
)
def test_a_bad_catalogue_file_is_a_clear_error(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        load_catalogue(path)


def test_the_catalogue_command_rejects_an_empty_selection(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no GeoNames places"):
        main(["catalogue", "--countries", "US", "--admin1", "ZZ", "--out", str(tmp_path / "x")])


def test_a_task_is_labeled_with_the_given_catalogue(tmp_path):
    from tests.support.data import real_tweets
    from trainer.task import prepare_task

    path = tmp_path / "tweets.jsonl"
    path.write_bytes(b"\n".join(real_tweets(400)) + b"\n")
    tennessee = build_catalogue(["US"], admin1=["TN"])
    task = prepare_task(path, "twitter-jsonl", countries=["US"], catalogue=tennessee)
    assert len(task.records) > 20
    assert {task.catalogue.locations[i].admin for i in task.labels} == {"Tennessee"}
    everywhere = prepare_task(path, "twitter-jsonl", countries=["US"])
    assert len(everywhere.records) > len(task.records)


def test_fit_refuses_a_catalogue_beside_countries(tmp_path, iowa_nebraska):
    argv = ["fit", "--data", str(tmp_path / "x.jsonl"), "--format", "jsonl"]
    argv += ["--catalogue", str(iowa_nebraska), "--countries", "US", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="--catalogue replaces --countries"):
        main(argv)


def test_index_serves_a_catalogue_files_locations(iowa_nebraska, tmp_path):
    from contrastgeo.commands.index import locations_from_args

    args = argparse.Namespace(locations=None, catalogue=iowa_nebraska)
    assert locations_from_args(args) == load_catalogue(iowa_nebraska).locations
    with pytest.raises(SystemExit, match="not both"):
        locations_from_args(argparse.Namespace(locations=tmp_path, catalogue=iowa_nebraska))
    assert locations_from_args(argparse.Namespace(locations=None, catalogue=None)) is None


def test_first_language_is_geonames_first_listed_language():
    from trainer.data.catalogue import first_language

    assert [first_language(c) for c in ("US", "gb", "NL", "BE", "RS", "HR", "CH")] == [
        "en",
        "en",
        "nl",
        "nl",
        "sr",
        "hr",
        "de",
    ]
    assert first_language("XX") == ""  # not a country GeoNames knows
