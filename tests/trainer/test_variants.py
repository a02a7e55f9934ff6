"""ContrastGeo's ablation variants (``contrastgeo-<variant>``) build the configs they name."""

from __future__ import annotations

import pydantic
import pytest

from model.config import ContrastGeoConfig
from trainer import methods
from trainer.methods import VARIANTS, variant_configs
from trainer.train import TrainConfig


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v])
def test_each_variant_changes_what_it_names(variant):
    model_base, train_base = ContrastGeoConfig(), TrainConfig()
    model_config, train_config = variant_configs(variant, model_base, train_base)
    model_override, train_override = VARIANTS[variant]
    for name, value in train_override.items():
        assert getattr(train_config, name) == value
    train_changed = _changed(train_base, train_config)
    model_changed = _changed(model_base, model_config)
    assert train_changed <= set(train_override)
    assert model_changed <= set(model_override)
    assert train_changed or model_changed  # a variant that changes nothing measures nothing


def _changed(base: pydantic.BaseModel, config: pydantic.BaseModel) -> set[str]:
    before = base.model_dump()
    return {k for k, v in config.model_dump().items() if v != before[k]}


def test_a_misspelled_override_fails_instead_of_training_the_default(monkeypatch):
    monkeypatch.setitem(methods.VARIANTS, "typo", ({}, {"learning_rate": 1e-4}))
    with pytest.raises(pydantic.ValidationError, match="learning_rate"):
        variant_configs("typo", ContrastGeoConfig(), TrainConfig())
    monkeypatch.setitem(methods.VARIANTS, "typo", ({"rerank": {"weight": 0.5}}, {}))
    with pytest.raises(pydantic.ValidationError, match="weight"):
        variant_configs("typo", ContrastGeoConfig(), TrainConfig())
