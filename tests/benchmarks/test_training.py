"""``training-bench`` on the real encoder and real GeoNames places, one step per mode at a
small catalogue: each mode runs its own path (the locked one encodes every place once, the
bank refreshes, the plain one does neither) and the table names them."""

import pytest

from benchmarks.training import MODES, measure_training, training_markdown


def test_each_location_side_is_timed_in_its_own_process():
    results = measure_training([40], plain_up_to=40, steps=1, batch=4)
    rows = {r["mode"]: r for r in results["rows"]}
    assert set(rows) == set(MODES)
    assert all(r["places"] == 40 and r["step_s_median"] > 0 for r in rows.values())
    assert rows["plain"]["refresh_s"] is None
    assert rows["locked"]["refresh_s"] > 0 and rows["bank"]["refresh_s"] > 0
    text = training_markdown(results)
    assert all(f"| minilm | 40 | {label} |" in text for label in MODES.values())


@pytest.mark.slow
def test_a_named_encoder_is_timed_with_its_own_recipe():
    """e5-small: its own weights, its word-embedding table frozen as fit freezes it."""
    results = measure_training([40], steps=1, batch=4, modes=("locked",), checkpoints=("e5-small",))
    (row,) = results["rows"]
    assert row["checkpoint"] == "e5-small" and row["step_s_median"] > 0
    assert "| e5-small | 40 |" in training_markdown(results)


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown mode"):
        measure_training([40], modes=("frozen",))
