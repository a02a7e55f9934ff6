"""The vector a location is served by (its prototype), torch-free: the workers' index
builder and the benchmark share this rule.

``prototype = normalize(e_prompt + w · Σ e_post)`` over the location's labeled posts, with
``w`` the weight of one post against the prompt (``w = 0``: the prompt alone; a place with
no labeled post always gets its prompt). The same direction as the mean
``(e_prompt + w Σ e_post) / (1 + w n)``: the prompt counts as 1/w posts, so a place with
many labels leans on them and one with few on its prompt.
"""

from __future__ import annotations

import numpy as np


def mix_prototypes(prompts: np.ndarray, post_sums: np.ndarray, weight: float) -> np.ndarray:
    """(N, D) prototypes from the prompt embeddings and, per location, the sum of its
    labeled posts' embeddings (zeros for a location without any)."""
    if weight < 0:
        raise ValueError(f"the posts' weight must be >= 0, not {weight}")
    mixed = prompts + weight * post_sums
    return mixed / np.maximum(np.linalg.norm(mixed, axis=-1, keepdims=True), 1e-12)
