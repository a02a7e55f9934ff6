"""Hard-negative mining: never a positive, follows the softmax, reproducible."""

import pytest
import torch

from model.mining import sample_negatives


@pytest.mark.parametrize("mode", ["hard", "topk", "random"])
def test_never_returns_a_positive(mode):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 12, generator=g) * 10
    positives = torch.rand(64, 12, generator=g) < 0.25
    positives[:, 0] = True  # at least one positive, at most 12 - 8 = 4 negatives needed
    positives[:, 8:] = False
    for _ in range(20):
        neg = sample_negatives(logits, positives, 4, mode, g)
        assert neg.shape == (64, 4)
        assert not positives.gather(1, neg).any()
        # no repeats within a row
        assert all(len(set(row)) == 4 for row in neg.tolist())


def test_gold_indices_accepted_and_excluded():
    logits = torch.tensor([[9.0, 1.0, 0.0], [0.0, 9.0, 1.0]])
    neg = sample_negatives(logits, torch.tensor([0, 1]), 2, "topk")
    assert neg.tolist() == [[1, 2], [2, 0]]


def test_hard_sampling_follows_softmax_over_negatives():
    logits = torch.tensor([5.0, 2.0, 1.0, 0.0, -1.0])
    n = 40_000
    rows = logits.expand(n, -1)
    gold = torch.zeros(n, dtype=torch.long)  # index 0 is the (most similar) gold location
    g = torch.Generator().manual_seed(1)
    neg = sample_negatives(rows, gold, 1, "hard", g).squeeze(1)
    freq = torch.bincount(neg, minlength=5).float() / n
    expected = torch.softmax(logits[1:], dim=0)
    assert freq[0] == 0
    torch.testing.assert_close(freq[1:], expected, atol=0.01, rtol=0)


def test_random_mode_is_uniform_over_negatives():
    n = 30_000
    rows = torch.tensor([10.0, 5.0, 0.0, -5.0]).expand(n, -1)
    g = torch.Generator().manual_seed(2)
    neg = sample_negatives(rows, torch.zeros(n, dtype=torch.long), 1, "random", g)
    freq = torch.bincount(neg.squeeze(1), minlength=4).float() / n
    torch.testing.assert_close(freq[1:], torch.full((3,), 1 / 3), atol=0.015, rtol=0)


def test_reproducible_with_generator():
    logits = torch.randn(8, 10)
    gold = torch.arange(8)
    a = sample_negatives(logits, gold, 3, "hard", torch.Generator().manual_seed(5))
    b = sample_negatives(logits, gold, 3, "hard", torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_underflowing_softmax_still_draws_k_negatives():
    # scale 100 on cosine sims: every negative but one underflows to probability 0
    logits = torch.tensor([[100.0, 99.0, -100.0, -100.0]])
    neg = sample_negatives(logits, torch.tensor([0]), 3, "hard")
    assert sorted(neg.tolist()[0]) == [1, 2, 3]


def test_too_many_negatives_is_a_clear_error():
    with pytest.raises(ValueError, match="non-positive"):
        sample_negatives(torch.randn(2, 3), torch.tensor([0, 1]), 3)
