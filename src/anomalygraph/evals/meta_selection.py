"""Meta-learned selection: learn on the tune fold how the surrogate metrics relate to real accuracy.

TSB-AutoAD (PVLDB 2025) counts meta-learning among the selectors that come closest to the
single best model: instead of trusting the surrogate ranks as they are (``surrogate``), a
regressor learns from labelled series which surrogate profile goes with a good candidate, and
picks the candidate with the best predicted VUS-PR on a new series. Here it learns from the
rows of a finished ``anomalygraph eval diagnosis`` (no track is recomputed):

* features per (series, candidate): each surrogate metric (synthetic VUS-PR per kind,
  centrality, the aggregated rank) raw and standardised within the series, the detector and
  the view one-hot, and whether the series has one scored channel;
* target: the candidate's VUS-PR minus the series' mean over candidates (only the order within
  a series matters for choosing);
* honest protocol: the regressor is chosen by leave-one-group-out cross-validation *on tune*
  (groups as in :mod:`anomalygraph.evals.folds`, so a held-out group's neighbours are never in
  training), refitted on all of tune, then measured once on validate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.detectors.candidates import VIEWS, parse_candidate
from anomalygraph.detectors.selection import BEST_ON_TUNE, KINDS
from anomalygraph.evals.selection import ORACLE, SelectionEval, SeriesResult

METRIC_NAMES = (*(f"synthetic_{k}" for k in (*KINDS, "all")), "centrality", "rank")


class Regressor(Protocol):
    def fit(self, x: np.ndarray, y: np.ndarray) -> Any: ...
    def predict(self, x: np.ndarray) -> np.ndarray: ...


def _ridge(alpha: float) -> Callable[[], Regressor]:
    def make() -> Regressor:
        from sklearn.linear_model import Ridge

        return Ridge(alpha=alpha)
    return make


def _forest() -> Regressor:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=200, min_samples_leaf=5, random_state=0, n_jobs=1)


REGRESSORS: dict[str, Callable[[], Regressor]] = {"ridge_1": _ridge(1.0), "ridge_10": _ridge(10.0), "forest": _forest}


def _scored(rows: Sequence[SeriesResult]) -> list[SeriesResult]:
    return [r for r in rows if r.status == "ok" and r.surrogates]


def candidate_features(row: SeriesResult, detectors: Sequence[str]) -> dict[str, np.ndarray]:
    """One feature vector per candidate that has both surrogates and a measured score."""
    names = [n for n in row.surrogates if n in row.candidates]
    columns = []
    for metric in METRIC_NAMES:
        s = [row.surrogates[n] for n in names]
        if metric == "centrality":
            v = np.array([x.centrality if x.centrality is not None else np.nan for x in s], float)
        elif metric == "rank":  # lower rank is better: negate so every metric reads "higher is better"
            v = -np.array([x.rank if x.rank is not None else np.nan for x in s], float)
        else:
            kind = metric.removeprefix("synthetic_")
            v = np.array([x.synthetic.get(kind, np.nan) for x in s], float)
        fill = float(np.nanmean(v)) if np.isfinite(v).any() else 0.0
        v = np.where(np.isfinite(v), v, fill)
        columns += [v, (v - v.mean()) / (v.std() + 1e-9)]
    single = float("," not in row.roles)  # "1 value (x)" vs "1 value (x), 20 indicator, ..."
    out = {}
    for i, name in enumerate(names):
        detector, view = parse_candidate(name)
        onehot = [float(detector == d) for d in detectors] + [float(view == v) for v in VIEWS]
        out[name] = np.array([c[i] for c in columns] + onehot + [single])
    return out


def _training_set(rows: Sequence[SeriesResult], detectors: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for row in rows:
        feats = candidate_features(row, detectors)
        if not feats:
            continue
        vus = np.array([row.candidates[n].vus_pr for n in feats])
        xs += list(feats.values())
        ys += list(vus - vus.mean())
    return np.array(xs), np.array(ys)


def choose(model: Regressor, row: SeriesResult, detectors: Sequence[str]) -> str:
    """The candidate with the best predicted VUS-PR (labels are not read: only surrogates and names)."""
    feats = candidate_features(row, detectors)
    names = list(feats)
    return names[int(np.argmax(model.predict(np.array([feats[n] for n in names]))))]


def fit(rows: Sequence[SeriesResult], regressor: str, detectors: Sequence[str]) -> Regressor:
    model = REGRESSORS[regressor]()
    x, y = _training_set(_scored(rows), detectors)
    model.fit(x, y)
    return model


def group_cv(rows: Sequence[SeriesResult], groups: Mapping[tuple[str, str], str], regressor: str,
             detectors: Sequence[str]) -> list[float]:
    """Leave-one-group-out VUS-PR of the chosen candidate on each series of ``rows``."""
    rows = _scored(rows)
    key = {id(r): groups.get((r.dataset, r.series), r.dataset) for r in rows}
    found = []
    for group in sorted(set(key.values())):
        train = [r for r in rows if key[id(r)] != group]
        model = fit(train, regressor, detectors)
        found += [r.candidates[choose(model, r, detectors)].vus_pr for r in rows if key[id(r)] == group]
    return found


class MetaRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regressor: str
    tune_cv_mean: float
    tune_cv_median: float
    validate_mean: float
    validate_median: float


class MetaEval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chosen: str  # best tune CV mean
    rows: list[MetaRow]
    reference: dict[str, dict[str, float]]  # fold -> {track: mean VUS-PR}


def run_meta_eval(report: SelectionEval, groups: Mapping[tuple[str, str], str]) -> MetaEval:
    """Each regressor's tune cross-validated and validate VUS-PR, beside the default and the oracle."""
    detectors = report.detectors
    tune = [r for r in _scored(report.rows) if r.fold == "tune"]
    validate = [r for r in _scored(report.rows) if r.fold == "validate"]
    rows = []
    for name in REGRESSORS:
        cv = group_cv(tune, groups, name, detectors)
        model = fit(tune, name, detectors)
        held = [r.candidates[choose(model, r, detectors)].vus_pr for r in validate]
        rows.append(MetaRow(regressor=name, tune_cv_mean=float(np.mean(cv)), tune_cv_median=float(np.median(cv)),
                            validate_mean=float(np.mean(held)), validate_median=float(np.median(held))))
    reference = {}
    for fold, mine in (("tune", tune), ("validate", validate)):
        reference[fold] = {
            f"fixed:{BEST_ON_TUNE}": float(np.mean([r.candidates[BEST_ON_TUNE].vus_pr for r in mine])),
            ORACLE: float(np.mean([r.candidates[r.oracle].vus_pr for r in mine if r.oracle])),
        }
    chosen = max(rows, key=lambda m: m.tune_cv_mean).regressor
    return MetaEval(chosen=chosen, rows=rows, reference=reference)


def markdown(result: MetaEval) -> str:
    lines = ["# Meta-learned selection (regressor chosen by leave-one-group-out CV on tune)", "",
             *table_lines(["regressor", "tune CV mean", "tune CV median", "validate mean", "validate median"])]
    for m in result.rows:
        label = m.regressor + (" (chosen on tune)" if m.regressor == result.chosen else "")
        lines.append(md_row([label, f"{m.tune_cv_mean:.3f}", f"{m.tune_cv_median:.3f}", f"{m.validate_mean:.3f}",
                             f"{m.validate_median:.3f}"]))
    for track in (f"fixed:{BEST_ON_TUNE}", ORACLE):
        lines.append(md_row([track, f"{result.reference['tune'][track]:.3f}", "", f"{result.reference['validate'][track]:.3f}", ""]))
    return "\n".join(lines) + "\n"
