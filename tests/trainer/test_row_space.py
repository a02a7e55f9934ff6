"""TF-IDF logistic regression fitted in the training rows' span is the same model, cheaper."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from trainer.methods import RowSpace

WORDS = [
    "memphis",
    "nashville",
    "knoxville",
    "tupelo",
    "jackson",
    "beale",
    "music",
    "rain",
    "game",
    "cowboys",
    "lake",
]


def corpus(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    texts = [" ".join([WORDS[label]] * 2 + list(rng.choice(WORDS, size=5))) for label in labels]
    return texts, labels


@pytest.mark.parametrize("c", [0.1, 10.0])
def test_row_space_gives_the_same_logistic_regression(c):
    train, y = corpus(40, seed=0)
    test, _ = corpus(25, seed=1)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))
    x_train, x_test = vectorizer.fit_transform(train), vectorizer.transform(test)
    assert x_train.shape[0] < x_train.shape[1]  # the case it is for: fewer rows than features

    # solved to a tight tolerance: the same problem has the same (unique) solution
    direct = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(x_train, y)
    rows = RowSpace()
    z_train = rows.fit_transform(x_train)
    projected = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(z_train, y)

    assert z_train.shape[1] <= x_train.shape[0]  # n weights per class, not one per feature
    np.testing.assert_allclose(
        projected.predict_proba(rows.transform(x_test)), direct.predict_proba(x_test), atol=1e-6
    )
    # the weights it stands for: W = Z-coefficients · Vᵀ, with V = Xᵀ U S⁻¹
    weights = projected.coef_ @ (x_train.T @ rows.projection).T
    np.testing.assert_allclose(weights, direct.coef_, atol=1e-5)


def test_more_rows_than_features_pass_through():
    x = np.random.default_rng(0).normal(size=(30, 5))
    rows = RowSpace()
    assert rows.fit_transform(x) is x and rows.transform(x[:3]) is not None
    np.testing.assert_array_equal(rows.transform(x[:3]), x[:3])
