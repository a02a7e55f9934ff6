"""The training loop on tiny random models: schedule, learning, early stopping."""

import pytest
import torch

from model import FusionConfig
from tests.conftest import LOCATIONS
from trainer.train import (
    Example,
    TrainConfig,
    build_optimizer,
    evaluate_acc1,
    fit,
    freeze_lower_layers,
    lr_factor,
    train_loop,
)

# Each location's posts carry its name: learnable by a tiny character-level model.
TRAIN = [
    Example(f"{w} {loc.name.lower()} {w}", i)
    for i, loc in enumerate(LOCATIONS)
    for w in ("hello", "going to", "lunch in", "rain")
]
DEV = [Example(f"back in {loc.name.lower()}", i) for i, loc in enumerate(LOCATIONS)]


def test_lr_factor_warmup_then_linear_decay():
    assert [round(lr_factor(s, 10, 2), 3) for s in range(10)] == [
        0.5,
        1.0,
        1.0,
        0.875,
        0.75,
        0.625,
        0.5,
        0.375,
        0.25,
        0.125,
    ]


@pytest.mark.parametrize("strategy", ["vector", "cross-attention", "token"])
def test_fit_lowers_both_losses(make_model, strategy):
    model = make_model(strategy)
    result = fit(
        model,
        TRAIN,
        LOCATIONS,
        TrainConfig(
            epochs=12,
            batch_size=10,
            lr=1e-3,
            head_lr=3e-3,
            negatives=2,
            progress=False,
        ),
    )
    first, last = result.history[0], result.history[-1]
    assert last["tlc"] < 0.7 * first["tlc"]
    assert last["tlm"] < first["tlm"]
    assert not model.training


def test_early_stopping_restores_the_best_dev_weights(make_model):
    model = make_model("vector")
    config = TrainConfig(epochs=6, batch_size=10, lr=1e-3, patience=2, progress=False)
    result = fit(model, TRAIN, LOCATIONS, config, dev=DEV)
    assert result.best_dev_acc1 == max(r["dev_acc1"] for r in result.history)
    assert evaluate_acc1(model, DEV, LOCATIONS) == pytest.approx(result.best_dev_acc1)


def test_fit_is_deterministic_given_a_seed(make_model):
    config = TrainConfig(epochs=2, batch_size=8, progress=False, seed=3)
    a, b = make_model(), make_model()
    fit(a, TRAIN, LOCATIONS, config)
    fit(b, TRAIN, LOCATIONS, config)
    assert torch.equal(a.embed_posts(["x y"]), b.embed_posts(["x y"]))


@pytest.mark.parametrize(
    ("examples", "min_steps", "steps"),
    [(3, 0, 2), (3, 10, 10), (3, 11, 12), (70, 5, 6), (70, 20, 24)],
)
def test_min_steps_adds_passes_over_small_data(examples, min_steps, steps):
    """Each epoch makes whole passes; with ``min_steps`` enough of them to reach it."""
    model = torch.nn.Linear(2, 1)
    seen: list[int] = []

    def step_fn(batch, generator):
        seen.append(len(batch))
        return model(torch.ones(len(batch), 2)).sum(), {"loss": 0.0}

    config = TrainConfig(epochs=2, batch_size=32, min_steps=min_steps, progress=False)
    result = train_loop(model, list(range(examples)), config, step_fn)
    assert len(seen) == steps and len(result.history) == 2
    assert sum(seen) == examples * steps // -(-examples // 32)  # whole passes only


def test_freeze_lower_layers_and_optimizer_groups(make_model):
    model = make_model(fusion=FusionConfig(strategy="vector"))
    frozen = freeze_lower_layers(model, 1)
    assert frozen > 0
    backbone = model.post_encoder.backbone
    assert not backbone.embeddings.word_embeddings.weight.requires_grad
    assert not next(backbone.encoder.layer[0].parameters()).requires_grad
    assert next(backbone.encoder.layer[1].parameters()).requires_grad
    optimizer = build_optimizer(model, TrainConfig(lr=1e-5, head_lr=1e-3))
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert id(backbone.embeddings.word_embeddings.weight) not in trained
    head = model.matching_head.linear.weight
    assert any(
        id(head) in {id(p) for p in g["params"]} and g["lr"] == 1e-3 for g in optimizer.param_groups
    )


def test_fit_rejects_bad_input(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="no training examples"):
        fit(model, [], LOCATIONS)
    with pytest.raises(ValueError, match="out of range"):
        fit(model, [Example("x", 9)], LOCATIONS)
