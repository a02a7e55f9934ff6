"""Each prediction names the admin area and the country holding the most probability among
its candidates: the fallback when the city is uncertain."""

from __future__ import annotations

import pytest

from stream.predictor import Candidate, most_probable_areas


def candidate(name: str, admin: str, country: str) -> Candidate:
    return Candidate(name, name, admin, country, 0.0, 0.0, score=0.0, tlc=0.0, tlm=None)


def test_areas_sum_their_candidates_probability():
    candidates = [
        candidate("Memphis", "Tennessee", "US"),
        candidate("Tupelo", "Mississippi", "US"),
        candidate("Nashville", "Tennessee", "US"),
        candidate("Jackson", "Mississippi", "US"),
        candidate("Ghent", "", "BE"),
    ]
    admin, country = most_probable_areas(candidates, [0.3, 0.25, 0.1, 0.2, 0.15])
    # the best city is in Tennessee, but Mississippi holds more (0.45 vs 0.40)
    assert (admin.name, admin.country) == ("Mississippi", "US")
    assert admin.probability == pytest.approx(0.45)
    assert (country.name, country.probability) == ("US", pytest.approx(0.85))


def test_ties_go_to_the_better_ranked_area_and_unnamed_areas_are_skipped():
    candidates = [candidate("A", "X", "US"), candidate("B", "Y", "US"), candidate("C", "", "")]
    admin, country = most_probable_areas(candidates, [0.4, 0.4, 0.2])
    assert admin.name == "X" and country.probability == pytest.approx(0.8)
    assert most_probable_areas([candidate("C", "", "")], [1.0]) == (None, None)
