"""The fixed tune / validate split: every series placed, by group, about half of each dataset per fold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from anomalygraph.core.errors import ConfigError
from anomalygraph.evals.folds import FOLDS, GROUPS, fold_of, fold_series, group_of


def test_every_series_on_disk_is_in_exactly_one_fold_by_group(shared_data):
    rows = fold_series(shared_data)
    assert {f for _, _, f in rows} == set(FOLDS)
    folds_of_group: dict[tuple[str, str], set[str]] = {}
    for dataset, path, fold in rows:
        folds_of_group.setdefault((dataset, group_of(dataset, path)), set()).add(fold)
    assert all(len(f) == 1 for f in folds_of_group.values())  # no group is split, so no neighbour leaks
    counts = Counter((d, f) for d, _, f in rows)
    for dataset in ("nab", "smap_msl"):
        total = counts[(dataset, "tune")] + counts[(dataset, "validate")]
        assert 0.35 < counts[(dataset, "validate")] / total < 0.65
    assert fold_series(shared_data, ("validate",)) == [r for r in rows if r[2] == "validate"]


def test_groups_are_nab_categories_and_smap_letters():
    assert group_of("nab", Path("NAB/data/realTweets/Twitter_volume_AAPL.csv")) == "realTweets"
    assert group_of("smap_msl", Path("SMAP_MSL/test/E-13.npy")) == "E"
    assert fold_of("smap_msl", Path("SMAP_MSL/test/E-13.npy")) == GROUPS["smap_msl"]["E"]


def test_a_series_of_an_unplaced_group_is_refused():
    with pytest.raises(ConfigError, match="group 'Z' is in neither fold"):
        fold_of("smap_msl", Path("SMAP_MSL/test/Z-1.npy"))
    with pytest.raises(ConfigError, match="unknown fold"):
        fold_series(Path("."), ("train",))  # type: ignore[arg-type]
