"""The fixed tune / validate split of the real data: what the diagnosis graph may be fitted on.

Everything the graph chooses (plan rules, the default selection strategy, fusion weights,
thresholds, per-channel rules) is decided on *tune*; *validate* is the headline. The split is
by group, never by series, so a series' neighbours cannot leak across it:

* NAB by category (``realTweets`` series resemble each other far more than they resemble
  ``realAWSCloudwatch``);
* SMAP/MSL by the channel's letter, the subsystem in telemanom's naming (the twelve ``E-``
  channels move together);
* UCR (three InternalBleeding records of one patient group) wholly in validate, the one
  TSB-AD file (a NAB facility series) in tune.

Groups were assigned from their sizes alone (about half of each dataset's series per fold),
not from any detector's results. Series not named here (a dataset added later) are
refused rather than silently placed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from anomalygraph.core.errors import ConfigError
from anomalygraph.data.datasets import dataset_files

Fold = Literal["tune", "validate"]
FOLDS: tuple[Fold, ...] = ("tune", "validate")
DATASETS = ("nab", "smap_msl", "ucr", "tsb_ad_u")

# group -> fold, per dataset
GROUPS: dict[str, dict[str, Fold]] = {
    "nab": {
        "artificialNoAnomaly": "tune", "artificialWithAnomaly": "tune", "realAWSCloudwatch": "tune",
        "realTraffic": "tune", "realAdExchange": "validate", "realKnownCause": "validate", "realTweets": "validate",
    },
    "smap_msl": {
        "A": "tune", "B": "tune", "E": "tune", "G": "tune", "M": "tune", "S": "tune",
        "C": "validate", "D": "validate", "F": "validate", "P": "validate", "T": "validate",
    },
    "ucr": {"ucr": "validate"},
    "tsb_ad_u": {"tsb_ad_u": "tune"},
}


def group_of(dataset: str, path: Path) -> str:
    """The group a series belongs to: its NAB category, its SMAP/MSL letter, or the dataset."""
    if dataset == "nab":
        return path.parent.name
    if dataset == "smap_msl":
        return path.stem.split("-", 1)[0]
    return dataset


def fold_of(dataset: str, path: Path) -> Fold:
    groups = GROUPS.get(dataset)
    if groups is None:
        raise ConfigError(f"dataset {dataset!r} has no fold; known: {', '.join(GROUPS)}")
    group = group_of(dataset, path)
    if group not in groups:
        raise ConfigError(f"{dataset}/{path.stem}: group {group!r} is in neither fold; add it to evals/folds.py GROUPS")
    return groups[group]


def fold_series(root: Path, folds: Sequence[Fold] = FOLDS, datasets: Sequence[str] = DATASETS) -> list[tuple[str, Path, Fold]]:
    """``(dataset, path, fold)`` for every series of ``datasets`` under ``root`` in ``folds``."""
    unknown = [f for f in folds if f not in FOLDS]
    if unknown:
        raise ConfigError(f"unknown fold(s) {unknown}; known: {', '.join(FOLDS)}")
    rows = []
    for dataset in datasets:
        for path in dataset_files(dataset, root):
            fold = fold_of(dataset, path)
            if fold in folds:
                rows.append((dataset, path, fold))
    return rows
