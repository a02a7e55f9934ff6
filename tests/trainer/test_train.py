"""The training loop on tiny random models: schedule, learning, the step budget, model
selection with the untrained model as a candidate, WiSE-FT interpolation, the rerank
weight picked on dev."""

import pytest
import torch

from model import FusionConfig
from model.prompts import PostFields
from tests.support.data import LOCATIONS
from trainer.task import input_prompts
from trainer.train import (
    Example,
    LocationBank,
    TrainConfig,
    _batches,
    build_optimizer,
    fit,
    freeze_lower_layers,
    interpolate,
    lr_factor,
    pretrained_parameters,
    select_interpolation,
    tlc_mrr,
    train_loop,
    training_step,
)

# Each location's posts carry its name: learnable by a tiny character-level model.
TRAIN = [
    Example(f"{w} {loc.name.lower()} {w}", i)
    for i, loc in enumerate(LOCATIONS)
    for w in ("hello", "going to", "lunch in", "rain")
]
DEV = [Example(f"back in {loc.name.lower()}", i) for i, loc in enumerate(LOCATIONS)]
# a short run that the tiny model learns from (a few seconds)
QUICK = dict(
    steps=24, eval_every=6, batch_size=10, lr=1e-3, head_lr=3e-3, negatives=2, progress=False
)


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
        TrainConfig(**QUICK),
    )
    first, last = result.history[0], result.history[-1]  # no dev: a row per eval_every
    assert [r["step"] for r in result.history] == [6, 12, 18, 24]
    assert last["tlc"] < 0.7 * first["tlc"]
    assert last["tlm"] < first["tlm"]
    assert not model.training


def test_dev_selection_keeps_the_best_step_and_picks_alpha_and_w(make_model):
    model = make_model("vector")
    config = TrainConfig(steps=30, eval_every=5, batch_size=10, lr=1e-3, progress=False)
    result = fit(model, TRAIN, LOCATIONS, config, dev=DEV)
    steps = [r["step"] for r in result.history]
    assert steps[0] == 0 and steps == sorted(steps) and all(s % 5 == 0 for s in steps)
    assert result.best_dev == max(r["dev"] for r in result.history)
    assert result.alpha in config.interpolation
    assert result.rerank_weight in config.rerank_weights
    assert model.config.rerank.tlm_weight == result.rerank_weight  # served with it
    if result.alpha == 1.0:  # the selected step's weights, as they were
        assert tlc_mrr(model, DEV, LOCATIONS) == pytest.approx(result.best_dev)


def test_early_stopping_counts_evaluations():
    model = torch.nn.Linear(2, 1)
    scores = iter([0.5, 0.4, 0.3, 0.2, 0.1, 0.0])  # only gets worse after step 0

    def step_fn(batch, generator):
        return model(torch.ones(len(batch), 2)).sum(), {"loss": 0.0}

    config = TrainConfig(steps=100, eval_every=10, patience=3, progress=False)
    result = train_loop(model, list(range(8)), config, step_fn, lambda: next(scores))
    assert [r["step"] for r in result.history] == [0, 10, 20, 30]
    assert result.best_step == 0


def test_when_fine_tuning_only_hurts_the_untrained_model_is_returned(make_model):
    """Dev labels are what the untrained model answers, the training labels contradict
    them: every step lowers the dev score, so step 0 wins and the weights are untouched."""
    model = make_model("vector")
    untrained = {k: v.clone() for k, v in model.state_dict().items()}
    posts = [ex.post for ex in TRAIN]
    answers = (model.embed_posts(posts) @ model.embed_locations(LOCATIONS).T).argmax(1)
    dev = [Example(p, int(a)) for p, a in zip(posts, answers, strict=True)]
    wrong = [Example(p, (int(a) + 1) % len(LOCATIONS)) for p, a in zip(posts, answers, strict=True)]
    config = TrainConfig(
        steps=20, eval_every=5, batch_size=10, lr=3e-3, head_lr=3e-3, progress=False
    )
    result = fit(model, wrong, LOCATIONS, config, dev=dev)
    assert result.best_step == 0 and len(result.history) > 1
    pretrained = set(pretrained_parameters(model))
    for name, value in model.state_dict().items():
        if name in pretrained:  # the locked location encoder is a copy of the post encoder
            before = name if name in untrained else name.replace("location_", "post_", 1)
            assert torch.equal(value, untrained[before]), name


def test_interpolation_ends_are_the_two_models(make_model):
    model = make_model("vector")
    start = pretrained_parameters(model)
    config = TrainConfig(steps=5, batch_size=10, lr=1e-2, progress=False)
    fit(model, TRAIN, LOCATIONS, config)
    end = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert start and not all(torch.equal(start[n], end[n]) for n in start)
    params = dict(model.named_parameters())
    interpolate(model, start, end, 0.0)
    assert all(torch.equal(params[n], start[n]) for n in start)  # θ0 exactly
    interpolate(model, start, end, 1.0)
    assert all(torch.equal(params[n], end[n]) for n in start)  # θ_ft exactly
    interpolate(model, start, end, 0.5)
    assert all(torch.allclose(params[n], (start[n] + end[n]) / 2) for n in start)
    # a new module has no pre-trained value: it is never interpolated
    assert "matching_head.linear.weight" not in start
    assert torch.equal(params["matching_head.linear.weight"], end["matching_head.linear.weight"])


def test_the_step_budget_does_not_depend_on_the_data_size():
    model = torch.nn.Linear(2, 1)
    for examples in (3, 70):
        seen: list[int] = []

        def step_fn(batch, generator, seen=seen):
            seen.append(len(batch))
            return model(torch.ones(len(batch), 2)).sum(), {"loss": 0.0}

        train_loop(model, list(range(examples)), TrainConfig(steps=12, progress=False), step_fn)
        assert len(seen) == 12


def test_sqrt_sampling_gives_each_place_a_square_root_share():
    # a long tail: place 0 has 400 posts, place 1 has 100, places 2-5 have 1 each
    train = [Example("p", place) for place, n in [(0, 400), (1, 100)] for _ in range(n)]
    train += [Example("p", place) for place in range(2, 6)]

    def drawn(sampling: str, epochs: int = 20) -> torch.Tensor:
        config = TrainConfig(batch_size=16, sampling=sampling)
        generator = torch.Generator().manual_seed(0)
        picks = [i for _ in range(epochs) for b in _batches(train, config, generator) for i in b]
        return torch.bincount(torch.tensor([train[i].location for i in picks]), minlength=6)

    plain = drawn("posts")
    assert plain.tolist() == [20 * n for n in (400, 100, 1, 1, 1, 1)]  # each post once
    shares = drawn("sqrt").double() / plain.sum()
    expected = torch.tensor([20.0, 10.0, 1, 1, 1, 1]) / 34  # sqrt(400), sqrt(100), sqrt(1) ...
    torch.testing.assert_close(shares, expected.double(), atol=0.01, rtol=0.1)


def test_bucketing_cuts_each_window_into_batches_of_similar_given_lengths():
    # the post texts' lengths run against the given ones: the batches must follow the given
    train = [Example("x" * (40 - i), i % 3) for i in range(40)]
    lengths = [(i * 7) % 40 for i in range(40)]  # a permutation of 0..39
    config = TrainConfig(batch_size=4, bucket=5)  # windows of 5 batches, 20 posts
    batches = _batches(train, config, torch.Generator().manual_seed(0), lengths)
    # the epoch's shuffle is the generator's first draw; each window of it, sorted by the
    # given lengths, is cut into batches of 4 (then shuffled as batches)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0)).tolist()
    windows = [sorted(order[s : s + 20], key=lengths.__getitem__) for s in (0, 20)]
    expected = {frozenset(w[k : k + 4]) for w in windows for k in range(0, 20, 4)}
    assert {frozenset(b) for b in batches} == expected
    assert len(batches) == 10
    with pytest.raises(ValueError, match="lengths"):
        _batches(train, config, torch.Generator().manual_seed(0))


def test_fit_buckets_by_what_the_model_reads_profile_included(make_model, monkeypatch):
    import trainer.train as train_module

    seen = []
    batches = train_module._batches

    def recording(train, config, generator, lengths=None):
        seen.append(lengths)
        return batches(train, config, generator, lengths)

    monkeypatch.setattr(train_module, "_batches", recording)
    model = make_model(prompts=input_prompts("text+meta"))
    posts = [
        PostFields(f"hi {loc.name}", user_location="somewhere far", user_description="d" * i)
        for i, loc in enumerate(LOCATIONS)
    ]
    train = [Example(post, i) for i, post in enumerate(posts)]
    fit(model, train, LOCATIONS, TrainConfig(steps=1, bucket=2, batch_size=2, progress=False))
    read = [len(text) for text in model.post_texts(posts)]
    assert seen[0] == read
    profile = len("somewhere far")
    assert all(n > len(p.text) + profile for n, p in zip(read, posts, strict=True))
    fit(make_model(), train, LOCATIONS, TrainConfig(steps=1, batch_size=2, progress=False))
    assert seen[-1] is None  # no bucketing, no text composed for it


def test_fit_is_deterministic_given_a_seed(make_model):
    config = TrainConfig(steps=4, batch_size=8, progress=False, seed=3)
    a, b = make_model(), make_model()
    fit(a, TRAIN, LOCATIONS, config)
    fit(b, TRAIN, LOCATIONS, config)
    assert torch.equal(a.embed_posts(["x y"]), b.embed_posts(["x y"]))


def test_cli_defaults_are_the_train_config_defaults():
    import argparse

    from contrastgeo.commands.data_args import (
        TRAIN_DEFAULTS,
        add_model_arguments,
        model_and_train_config,
    )

    assert TRAIN_DEFAULTS.steps == TrainConfig().steps
    assert TRAIN_DEFAULTS.batch_size == TrainConfig().batch_size
    assert TRAIN_DEFAULTS.lr == TrainConfig().lr
    assert TRAIN_DEFAULTS.head_lr == TrainConfig().head_lr
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    us = ["US"]
    assert model_and_train_config(parser.parse_args([]), us)[1] == TrainConfig()
    args = parser.parse_args(["--location-encoder", "trained"])
    assert model_and_train_config(args, us)[1].location_encoder == "trained"
    assert model_and_train_config(parser.parse_args(["--lr", "1e-4"]), us)[1].lr == 1e-4


def test_checkpoint_auto_picks_the_encoder_by_the_catalogues_countries(capsys):
    """--checkpoint auto (the default): minilm where every country's first language is
    English, the multilingual e5-small otherwise (one non-English country is enough); a
    name given is kept whatever the countries; no countries is a clear error."""
    import argparse

    import pytest

    from contrastgeo.commands.data_args import add_model_arguments, model_and_train_config

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)

    def encoder(argv, countries):
        return model_and_train_config(parser.parse_args(argv), countries)[0].encoder

    assert encoder([], ["US"]).checkpoint == "minilm"
    assert encoder([], ["GB", "IE"]).checkpoint == "minilm"
    dutch = encoder([], ["NL", "BE"])
    assert (dutch.checkpoint, dutch.post_prefix) == ("e5-small", "query: ")
    assert encoder([], ["BA", "HR", "ME", "RS"]).checkpoint == "e5-small"
    assert encoder([], ["US", "MX"]).checkpoint == "e5-small"
    assert "encoder: e5-small (--checkpoint auto; the catalogue's countries: US en, MX es)" in (
        capsys.readouterr().out
    )
    assert encoder(["--checkpoint", "minilm"], ["NL"]).checkpoint == "minilm"
    with pytest.raises(SystemExit, match="none given"):
        encoder([], [])


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


def count_calls(monkeypatch, owner: type, name: str) -> list:
    """Patch the method ``owner.name`` to record the first argument of every call; returns
    the record."""
    calls = []
    real = getattr(owner, name)

    def counted(self, items, *args, **kwargs):
        calls.append(items)
        return real(self, items, *args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def bank_batch():
    return [TRAIN[i] for i in (0, 5, 9, 14)]


@pytest.mark.parametrize("strategy", ["vector", "cross-attention"])
def test_a_bank_holding_every_location_gives_the_full_step(make_model, strategy):
    """With every location re-encoded (negatives >= N - 1) and no dropout, the bank's step
    is the plain step: same TLC loss, same TLM loss (the same negatives drawn)."""
    config = TrainConfig(negatives=2, progress=False)
    losses = []
    for bank in (None, LocationBank(refresh=1, negatives=len(LOCATIONS))):
        model = make_model(strategy).eval()
        generator = torch.Generator().manual_seed(0)
        _, stats = training_step(model, bank_batch(), LOCATIONS, config, generator, bank=bank)
        losses.append(stats)
    assert losses[0]["tlc"] == pytest.approx(losses[1]["tlc"], abs=1e-6)
    assert losses[0]["tlm"] == pytest.approx(losses[1]["tlm"], abs=1e-6)


def test_the_bank_re_encodes_the_gold_and_the_hardest_negatives_only(make_model):
    model = make_model("vector").eval()
    bank = LocationBank(refresh=10, negatives=1)
    batch = bank_batch()[:2]
    gold = torch.tensor([ex.location for ex in batch])
    posts = model.encode_posts([ex.post for ex in batch])
    active, fresh = bank.step(model, LOCATIONS, posts.embeddings, gold)
    assert set(gold.tolist()) <= set(active.tolist()) and len(active) <= 2 * len(batch)
    assert active.tolist() == sorted(active.tolist())
    with torch.no_grad():
        similarity = posts.embeddings @ model.embed_locations(LOCATIONS).T
        similarity[torch.arange(2), gold] = float("-inf")
    assert set(similarity.argmax(dim=1).tolist()) <= set(active.tolist())
    # gradients reach the location encoder through the active rows
    fresh.embeddings.sum().backward()
    assert fresh.embeddings.shape[0] == len(active)
    assert any(p.grad is not None for p in model.post_encoder.parameters())


def test_the_bank_losses_run_over_the_re_encoded_rows_only(make_model):
    """The stale rows only choose the negatives (ANCE): moving every stale row by the
    same vector keeps each post's ranking of them, so the same negatives are mined, and
    the losses do not change. Mixed into the softmax, the stale rows would change them."""
    model = make_model("vector").eval()
    config = TrainConfig(negatives=2, progress=False)
    with torch.no_grad():
        clean = model.embed_locations(LOCATIONS)
    losses = []
    for shift in (0.0, 0.3):
        bank = LocationBank(refresh=10**9, negatives=1)
        bank.embeddings, bank.step_count = clean + shift, 1  # stale: never refreshed here
        generator = torch.Generator().manual_seed(0)
        batch = bank_batch()[:2]  # 2 golds and 2 negatives: not every location is active
        _, stats = training_step(model, batch, LOCATIONS, config, generator, bank=bank)
        losses.append(stats)
    assert losses[0]["tlc"] == pytest.approx(losses[1]["tlc"], abs=1e-6)
    assert losses[0]["tlm"] == pytest.approx(losses[1]["tlm"], abs=1e-6)


def test_fit_uses_the_bank_above_its_threshold_and_learns(make_model):
    model = make_model("vector")
    config = TrainConfig(
        **QUICK,
        location_encoder="trained",  # a bank is for locations that are trained
        bank_above=0,  # the bank for 5 locations: the catalogue-scale path on a tiny model
        bank_refresh=6,
        bank_negatives=2,
    )
    result = fit(model, TRAIN, LOCATIONS, config)
    assert result.history[-1]["tlc"] < 0.7 * result.history[0]["tlc"]


def test_a_fit_with_locked_locations_trains_the_post_side_against_one_encoding(
    make_model, monkeypatch
):
    """A locked location encoder: the location weights stay the pre-trained ones, the
    candidates are encoded once for the whole fit (no bank, even above its threshold),
    and TLC learns."""
    from trainer.encoding_memo import EncodingMemo

    model = make_model("vector")
    untrained = {k: v.clone() for k, v in model.post_encoder.state_dict().items()}
    encodes = []
    real = type(model).encode_locations

    def counted(self, locations):
        encodes.append(torch.is_grad_enabled())
        return real(self, locations)

    monkeypatch.setattr(type(model), "encode_locations", counted)
    batched = count_calls(monkeypatch, type(model), "encode_locations_batched")
    monkeypatch.setattr(type(model), "embed_locations", None)  # the dev reads the encodings
    memo = EncodingMemo()
    config = TrainConfig(**QUICK, location_encoder="locked", bank_above=0)
    result = fit(model, TRAIN, LOCATIONS, config, dev=DEV, memo=memo)
    assert model.location_encoder_locked
    locked = model.location_encoder.state_dict()
    assert all(torch.equal(untrained[k], v) for k, v in locked.items())
    assert any(not torch.equal(untrained[k], v) for k, v in model.post_encoder.state_dict().items())
    assert batched == [LOCATIONS]  # one encoding: training, dev and rerank share it
    assert not any(encodes)  # never with gradients
    trained = [r["tlc"] for r in result.history if "tlc" in r]
    assert trained[-1] < 0.7 * trained[0]


def test_auto_locks_the_locations_when_most_candidates_have_no_label():
    from trainer.train import locks_locations

    every = [Example("x", i) for i in range(len(LOCATIONS))]
    assert not locks_locations("auto", every, LOCATIONS)  # the 30-city protocol's case
    assert locks_locations("auto", every[:2], LOCATIONS)  # a catalogue: 2 of 5 labeled
    assert not locks_locations("auto", every[:3], LOCATIONS)
    assert locks_locations("locked", every, LOCATIONS)
    assert not locks_locations("trained", every[:1], LOCATIONS)
    with pytest.raises(ValueError):
        TrainConfig(location_encoder="frozen")


def test_interpolation_selection_reuses_the_known_score_and_skips_an_untrained_model(
    make_model, monkeypatch
):
    from trainer import train as train_module

    model = make_model("vector")
    start = pretrained_parameters(model)
    calls = []
    real = train_module.tlc_mrr

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(train_module, "tlc_mrr", counted)
    # untouched weights: every α is the same model, none is evaluated
    assert select_interpolation(model, start, DEV, LOCATIONS, (0.0, 0.5, 1.0)) == 1.0
    assert calls == []
    fit(model, TRAIN, LOCATIONS, TrainConfig(**QUICK))
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    own = real(model, DEV, LOCATIONS)
    alpha = select_interpolation(model, start, DEV, LOCATIONS, (0.0, 0.5, 1.0), own)
    assert len(calls) == 2  # α = 1's score was given
    # the same choice as evaluating every α
    model.load_state_dict(trained)
    assert select_interpolation(model, start, DEV, LOCATIONS, (0.0, 0.5, 1.0)) == alpha
    assert len(calls) == 5
    # α = 0 is the pre-trained model: its known score (step 0's) spares one more
    model.load_state_dict(trained)
    interpolate(model, start, trained, 0.0)  # the pre-trained weights
    untrained_score = real(model, DEV, LOCATIONS)
    model.load_state_dict(trained)
    known = dict(finetuned_score=own, pretrained_score=untrained_score)
    assert select_interpolation(model, start, DEV, LOCATIONS, (0.0, 0.5, 1.0), **known) == alpha
    assert len(calls) == 6


def test_the_fit_time_counts_the_locked_candidates_encoding(make_model, monkeypatch):
    """The locked candidates are encoded before the training loop starts its clock; the
    fit's time still includes them (a fake clock: no timing in tests)."""
    import trainer.train as train_module
    from trainer.encoding_memo import EncodingMemo

    clock = [0.0]
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: clock[0])
    real = EncodingMemo.encoded

    def slow(self, model, locations):
        clock[0] += 100.0
        return real(self, model, locations)

    monkeypatch.setattr(EncodingMemo, "encoded", slow)
    config = TrainConfig(**{**QUICK, "steps": 2}, location_encoder="locked")
    assert fit(make_model("vector"), TRAIN, LOCATIONS, config).seconds == 100.0
