"""The refit benchmark's served model: its most frequent locations, and at catalogue scale
every other catalogue place except the new ones the refit must learn."""

import pytest

from benchmarks.refit import served_locations
from tests.support.data import LOCATIONS


def test_the_served_locations_leave_out_the_new_ones_whole_catalogue_or_not():
    ranked = [LOCATIONS[3], LOCATIONS[0], LOCATIONS[4]]  # by frequency in the data
    assert served_locations(LOCATIONS, ranked, served=1, new=2, whole_catalogue=False) == [
        LOCATIONS[3]
    ]
    served = served_locations(LOCATIONS, ranked, served=1, new=2, whole_catalogue=True)
    # the labeled one first, then the catalogue's places but the two new ones, in order
    assert served == [LOCATIONS[3], LOCATIONS[1], LOCATIONS[2]]
    assert served_locations(LOCATIONS, ranked, 1, 1, True) == [
        LOCATIONS[3],
        LOCATIONS[1],
        LOCATIONS[2],
        LOCATIONS[4],
    ]


def test_too_few_ranked_locations_is_a_clear_error():
    with pytest.raises(SystemExit, match="only 3 locations"):
        served_locations(LOCATIONS, LOCATIONS[:3], served=2, new=2, whole_catalogue=True)
