"""Real-data tests skip without ../shared/data on a developer's machine, and fail in CI."""

import pytest

from tests.support.data import shared_data


def test_missing_data_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        shared_data("no-such-dataset")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        shared_data("no-such-dataset")
