"""TLC and TLM against hand-computed values and a naive reference, gradients included."""

import math

import pytest
import torch
import torch.nn.functional as F

from model.losses import match_labels, positive_mask, tlc_loss, tlm_loss

POSTS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
LOCS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def naive_tlc(posts, locs, positives, scale):
    """Row by row, with explicit sums: -sum_n t_n log softmax(scale * <p, l_n>)."""
    total = 0.0
    for b in range(posts.shape[0]):
        logits = [
            scale * sum(posts[b, d] * locs[n, d] for d in range(posts.shape[1]))
            for n in range(locs.shape[0])
        ]
        log_z = torch.logsumexp(torch.stack(logits), dim=0)
        pos = [n for n in range(locs.shape[0]) if positives[b, n]]
        total = total + sum(-(logits[n] - log_z) for n in pos) / len(pos)
    return total / posts.shape[0]


def test_tlc_single_positive_hand_computed():
    # logits rows: [2, 0, 0] and [0, 2, 0]; each loss = log(1 + 2 e^-2)
    loss = tlc_loss(POSTS, LOCS, torch.tensor([0, 1]), inverse_temperature=2.0)
    assert loss.item() == pytest.approx(math.log(1 + 2 * math.exp(-2)), rel=1e-6)


def test_tlc_several_positives_hand_computed():
    # post 0 has positives {0, 1}: targets [.5, .5, 0] -> log(e^2 + 2) - 1
    # post 1 has positive {1}: log(1 + 2 e^-2)
    positives = torch.tensor([[True, True, False], [False, True, False]])
    loss = tlc_loss(POSTS, LOCS, positives, inverse_temperature=2.0)
    expected = ((math.log(math.exp(2) + 2) - 1) + math.log(1 + 2 * math.exp(-2))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_tlc_gradient_hand_computed():
    # dL/dp_b = scale / B * sum_n (softmax_bn - t_bn) l_n
    posts = POSTS.clone().requires_grad_(True)
    tlc_loss(posts, LOCS, torch.tensor([0, 1]), inverse_temperature=2.0).backward()
    e2 = math.exp(2)
    soft = torch.tensor([[e2, 1, 1], [1, e2, 1]]) / (e2 + 2)
    expected = 2.0 / 2 * (soft - F.one_hot(torch.tensor([0, 1]), 3)) @ LOCS
    torch.testing.assert_close(posts.grad, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tlc_matches_naive_reference_with_gradients(seed):
    g = torch.Generator().manual_seed(seed)
    posts = F.normalize(torch.randn(4, 5, generator=g), dim=1).requires_grad_(True)
    locs = F.normalize(torch.randn(6, 5, generator=g), dim=1).requires_grad_(True)
    positives = torch.rand(4, 6, generator=g) < 0.3
    positives[torch.arange(4), torch.randint(0, 6, (4,), generator=g)] = True
    scale = torch.tensor(7.0, requires_grad=True)
    fast = tlc_loss(posts, locs, positives, scale)
    slow = naive_tlc(posts, locs, positives, scale)
    torch.testing.assert_close(fast, slow)
    fast_grads = torch.autograd.grad(fast, (posts, locs, scale))
    slow_grads = torch.autograd.grad(slow, (posts, locs, scale))
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_tlc_symmetric_adds_location_to_post_direction():
    labels = torch.tensor([0, 1])
    one_way = tlc_loss(POSTS, LOCS, labels, 2.0)
    both = tlc_loss(POSTS, LOCS, labels, 2.0, symmetric=True)
    # locations 0 and 1 each see posts [2, 0] / [0, 2]: loss log(1 + e^-2) each
    assert both.item() == pytest.approx((one_way.item() + math.log(1 + math.exp(-2))) / 2)


def test_tlc_rejects_post_without_positive():
    with pytest.raises(ValueError, match="positive"):
        tlc_loss(POSTS, LOCS, torch.zeros(2, 3, dtype=torch.bool), 1.0)


def test_tlm_hand_computed_and_gradient():
    logits = torch.tensor(
        [[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], [[0.0, 3.0], [0.0, 0.0], [2.0, 0.0]]],
        requires_grad=True,
    )
    labels = match_labels(2, 2)
    assert labels.tolist() == [[1, 0, 0], [1, 0, 0]]

    # CE of [a, b]: label 1 -> log(1 + e^(a-b)); label 0 -> log(1 + e^(b-a))
    def ce(a, b, y):
        return math.log(1 + math.exp(a - b)) if y else math.log(1 + math.exp(b - a))

    pairs = [(0, 0, 1), (1, 0, 0), (0, 2, 0), (0, 3, 1), (0, 0, 0), (2, 0, 0)]
    expected = sum(ce(*p) for p in pairs) / len(pairs)
    loss = tlm_loss(logits, labels)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # d CE / d logits = (softmax - onehot) / n
    onehot = F.one_hot(labels, 2).float()
    torch.testing.assert_close(logits.grad, (logits.detach().softmax(-1) - onehot) / 6)


def test_positive_mask():
    assert positive_mask(torch.tensor([2, 0]), 3).tolist() == [
        [False, False, True],
        [True, False, False],
    ]
