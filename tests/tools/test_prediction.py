"""predict_anomaly on a real NAB file: only the past is read, the evidence matches the file's own labels."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tsfm_public", reason="predict_anomaly needs the [f2a] extra")

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.data.loaders import load_series
from anomalygraph.tools import ToolContext, build_tools
from anomalygraph.tools.prediction import PredictArgs, predict_anomaly

JUMPSUP = "NAB/data/artificialWithAnomaly/art_daily_jumpsup.csv"


@pytest.fixture
def ctx(shared_data, tmp_path):
    return ToolContext(data_roots=[shared_data, tmp_path], output_dir=tmp_path / "plots")


def test_the_prediction_reads_only_rows_before_at_and_its_neighbours_carry_the_files_labels(ctx, shared_data, tmp_path):
    full = load_series(shared_data / JUMPSUP)
    at = 3000
    got = predict_anomaly(ctx, PredictArgs(path=JUMPSUP, at=at, horizon=8))
    assert got.rows == f"{at}..{at + 7}" and len(got.probability) == 8
    assert got.max_probability == pytest.approx(max(got.probability), abs=1e-4)
    # every neighbour is a past window: its context and what followed it lie before `at`, and
    # "followed by an anomaly" is exactly what the file's labels say of those rows
    assert got.neighbours
    for n in got.neighbours:
        a, b = (int(v) for v in n.followed_rows.split(".."))
        c1 = int(n.context_rows.split("..")[1])
        assert c1 + 1 == a and b < at and b - a + 1 == 16
        assert n.followed_by_anomaly == bool(full.labels[a : b + 1].any())
    assert got.plot is not None and Path(got.plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the rows at and after `at` are never read: a file that differs only there gives the same answer
    changed = full.values[:, 0].copy()
    changed[at:] = 1e6
    rows = zip(full.timestamps.astype(str), changed, full.labels, strict=True)
    (tmp_path / "changed.csv").write_text("timestamp,value,label\n" + "\n".join(f"{t},{v},{y}" for t, v, y in rows))
    other = predict_anomaly(ctx, PredictArgs(path=str(tmp_path / "changed.csv"), at=at, horizon=8))
    assert other.probability == got.probability
    assert (other.percentile, other.recent_error, other.outlook) == (got.percentile, got.recent_error, got.outlook)
    assert [n.context_rows for n in other.neighbours] == [n.context_rows for n in got.neighbours]
    # without labels the evidence says so, instead of claiming that no anomaly followed
    (tmp_path / "unlabelled.csv").write_text("timestamp,value\n" + "\n".join(
        f"{t},{v}" for t, v in zip(full.timestamps.astype(str), changed, strict=True)))
    bare = predict_anomaly(ctx, PredictArgs(path=str(tmp_path / "unlabelled.csv"), at=at, horizon=8))
    assert all(n.followed_by_anomaly is None for n in bare.neighbours) and "no labels" in bare.summary


def test_bad_requests_name_the_problem(ctx):
    with pytest.raises(ConfigError, match="at most 16 steps ahead"):
        predict_anomaly(ctx, PredictArgs(path=JUMPSUP, horizon=40))
    with pytest.raises(DataError, match="needs at least 529 earlier rows"):
        predict_anomaly(ctx, PredictArgs(path=JUMPSUP, at=100))
    with pytest.raises(DataError, match="past the end"):
        predict_anomaly(ctx, PredictArgs(path=JUMPSUP, at=10**6))
    tool = {t.name: t for t in build_tools(ctx)}["predict_anomaly"]
    assert "at most 16 steps ahead" in tool.invoke({"path": JUMPSUP, "horizon": 40})  # text the model can read

