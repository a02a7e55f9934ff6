"""A post fitted into its token budget by field (model.post_budget), on real tweets read by
the real MiniLM tokenizer, and the same inputs in training and in the workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.config import DEFAULT_CHECKPOINT, ContrastGeoConfig, EncoderConfig, PromptConfig
from model.encoders import resolve_checkpoint
from model.post_budget import counting_tokenizer, fit_post_inputs
from model.prompts import PostFields, normalize_spaces, post_inputs
from schemas.twitter import parse_post
from tests.support.data import real_tweets

BUDGET = 48


@pytest.fixture(scope="module")
def tokenizer():
    path = Path(resolve_checkpoint(DEFAULT_CHECKPOINT)) / "tokenizer.json"
    return counting_tokenizer(path.read_text())


@pytest.fixture(scope="module")
def posts():
    """Real tweets that have a profile location (what the cut must keep)."""
    parsed = [parse_post(raw) for raw in real_tweets(600)]
    return [p for p in parsed if p.user_location.strip()]


def tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text).ids)


def test_long_posts_lose_their_description_then_their_text_never_their_location(tokenizer, posts):
    config = ContrastGeoConfig()
    plain = post_inputs(posts, config)
    fitted = fit_post_inputs(posts, config, tokenizer, BUDGET)
    over = [i for i, text in enumerate(plain) if tokens(tokenizer, text) > BUDGET]
    assert len(over) > 50, "the sample should have many posts over the budget"
    text_cut = 0
    for i, (post, before, after) in enumerate(zip(posts, plain, fitted, strict=True)):
        if i not in over:
            assert after == before  # a post within the budget is left as it was
            continue
        assert tokens(tokenizer, after) <= BUDGET
        assert f"location: {normalize_spaces(post.user_location)}" in after
        # the budget is used, not cut short: at most the dropped description's label
        # beyond what had to go
        assert tokens(tokenizer, after) >= BUDGET - 4, (before, after)
        text = normalize_spaces(post.text)
        if not after.startswith(text):  # the text was cut: then no description is left
            text_cut += 1
            assert "| bio:" not in after
            assert text.startswith(after.split(" | location: ")[0])
    assert text_cut > 0, "the sample should have posts whose text alone is too long"


def test_plain_truncation_would_have_lost_the_location(tokenizer, posts):
    """Why the cut exists: cut from the end, many of these posts lose their location."""
    plain = post_inputs(posts, ContrastGeoConfig())
    truncated = [tokenizer.decode(tokenizer.encode(t).ids[: BUDGET - 1]) for t in plain]
    assert sum("location:" in t for t in plain) - sum("location:" in t for t in truncated) > 10


def test_fields_outside_the_cut_order_are_never_cut(tokenizer):
    """With no cut order the fields stay whole and plain truncation does the rest."""
    post = PostFields(text="word " * 80, user_location="Memphis, TN", user_description="bio")
    config = ContrastGeoConfig(prompts=PromptConfig(post_cut_order=()))
    assert fit_post_inputs([post], config, tokenizer, BUDGET) == post_inputs([post], config)
    cut = fit_post_inputs([post], ContrastGeoConfig(), tokenizer, BUDGET)[0]
    assert cut.endswith(" | location: Memphis, TN") and tokens(tokenizer, cut) <= BUDGET


def test_a_plain_string_has_no_fields_to_cut(tokenizer):
    text = "word " * 80
    assert fit_post_inputs([text], ContrastGeoConfig(), tokenizer, BUDGET) == [text.strip()]


def test_training_and_the_worker_compose_the_same_fitted_inputs(make_model, tiny_store, posts):
    """The worker's ``post_max_length`` fits posts exactly as a model trained with that
    ``post_max_length`` does."""
    from stream.settings import WorkerSettings

    settings = WorkerSettings(**tiny_store, post_max_length=24)
    served = settings.load_model(settings.version_in_service(settings.open_index()))
    assert served.config.encoder.post_max_length == 24
    model = make_model(encoder=EncoderConfig(checkpoint="unused", post_max_length=24))
    sample = posts[:40]
    assert served.post_texts(sample) == model.post_texts(sample)
    assert served.post_texts(sample) != post_inputs(sample, served.config)  # some were cut


@pytest.mark.parametrize("length", [8, 129])
def test_the_worker_refuses_a_budget_the_model_cannot_serve(tiny_store, length):
    from stream.settings import WorkerSettings

    settings = WorkerSettings(**tiny_store, post_max_length=length)
    with pytest.raises(ValueError, match="trained with"):
        settings.load_model(settings.version_in_service(settings.open_index()))
