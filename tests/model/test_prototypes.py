"""The prototype rule the index and the benchmark share: the prompt plus w x the labeled
posts, normalized."""

from __future__ import annotations

import numpy as np
import pytest

from model.prototypes import mix_prototypes


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_mixing_leans_on_the_posts_as_they_add_up():
    rng = np.random.default_rng(0)
    prompts = unit(rng.normal(size=(3, 8)))
    posts = [unit(rng.normal(size=(n, 8))) for n in (0, 1, 20)]
    sums = np.stack([p.sum(0) if len(p) else np.zeros(8) for p in posts])

    np.testing.assert_allclose(mix_prototypes(prompts, sums, 0.0), prompts, atol=1e-12)
    mixed = mix_prototypes(prompts, sums, 0.5)
    np.testing.assert_allclose(np.linalg.norm(mixed, axis=1), 1.0)
    np.testing.assert_allclose(mixed[0], prompts[0])  # no labeled post: the prompt alone
    # the same direction as the mean (prompt + w sum) / (1 + w n)
    mean = (prompts[2] + 0.5 * sums[2]) / (1 + 0.5 * 20)
    np.testing.assert_allclose(mixed[2], mean / np.linalg.norm(mean))
    # the place with 20 posts moves further from its prompt than the one with 1
    assert mixed[2] @ prompts[2] < mixed[1] @ prompts[1]
    with pytest.raises(ValueError, match=">= 0"):
        mix_prototypes(prompts, sums, -1.0)
