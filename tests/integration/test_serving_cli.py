"""export -> index -> predict from the command line on embedded defaults (Qdrant's embedded
engine, no server), with the real pre-trained encoder."""

from __future__ import annotations

import json

import pytest

from contrastgeo.cli import main
from model import ContrastGeo
from model.prompts import Location, save_locations
from trainer.examples import load_example


@pytest.mark.slow
def test_export_index_predict_and_add_a_location(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONTRASTGEO_MODEL_STORE", str(tmp_path / "models"))
    monkeypatch.setenv("CONTRASTGEO_INDEX_PATH", str(tmp_path / "index"))
    data = load_example()
    model_dir = tmp_path / "model"
    ContrastGeo.from_config().save(model_dir)  # the pre-trained encoder, untrained heads
    save_locations(model_dir / "locations.jsonl", data.locations)

    assert main(["export", "--model", str(model_dir)]) == 0
    assert main(["index"]) == 0
    capsys.readouterr()
    assert main(["predict", "Grizzlies game downtown", "--user-location", "Memphis, TN"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["location"]["name"] == "Memphis"
    assert not out["abstained"] and len(out["candidates"]) == 3

    new = tmp_path / "new.jsonl"
    save_locations(new, [Location("5099836", "Jersey City", "New Jersey", "US", 40.73, -74.08)])
    assert main(["index", "--add", str(new)]) == 0
    capsys.readouterr()
    assert main(["predict", "ferry to work", "--user-location", "Jersey City, NJ"]) == 0
    assert json.loads(capsys.readouterr().out)["location"]["name"] == "Jersey City"
