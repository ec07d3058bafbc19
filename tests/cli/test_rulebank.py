"""``anomalygraph rulebank`` commands, run through their typer app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anomalygraph.cli.rulebank import app
from anomalygraph.core.errors import ConfigError

runner = CliRunner()


def test_list_and_show() -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0 and "cutaddpaste" in result.output
    result = runner.invoke(app, ["show", "cutaddpaste"], terminal_width=200)
    assert result.exit_code == 0
    assert "cut_add_paste" in result.output and "segment_transplant" in result.output
    result = runner.invoke(app, ["show", "generic", "--json"])
    assert json.loads(result.output)["name"] == "generic"


def test_validate_ok_and_write(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "generic"])
    assert result.exit_code == 0 and "ok" in result.output
    path = tmp_path / "b.yaml"
    path.write_text("name: b\nrules:\n  - {id: s, operator: spike, duration: {unit: steps, dist: 1}}\n")
    result = runner.invoke(app, ["validate", str(path), "--write"])
    assert result.exit_code == 0
    assert "report:" in path.read_text()


def test_validate_reports_a_bad_bank_as_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: b\nrules:\n  - {id: s, operator: spike, params: {magnitude: 1000}, duration: {unit: steps, dist: 1}}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert isinstance(result.exception, ConfigError)
    assert "rules[0] (id 's')" in str(result.exception) and "params.magnitude" in str(result.exception)


def test_schema_and_diff() -> None:
    schema = json.loads(runner.invoke(app, ["schema"]).output)
    assert schema["title"] == "RuleBank"
    prior = json.loads(runner.invoke(app, ["schema", "--prior"]).output)
    assert "AnomalyPrior" in prior["$defs"]
    result = runner.invoke(app, ["diff", "generic", "cutaddpaste"], terminal_width=200)
    assert result.exit_code == 0 and "+ rule cut_add_paste" in result.output


@pytest.mark.filterwarnings("ignore::anomalygraph.core.errors.DataWarning")
def test_sample_writes_the_png_grid_and_npz_for_a_real_msl_channel(shared_data, tmp_path: Path) -> None:
    png, npz = tmp_path / "grid.png", tmp_path / "batch.npz"
    file = shared_data / "SMAP_MSL" / "test" / "C-1.npy"
    result = runner.invoke(app, ["sample", "cutaddpaste", str(file), "--n", "16", "--plot", str(png), "--out", str(npz)],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    with np.load(npz) as data:
        assert data["x_pa"].shape == (16, 100, 55) and data["mask"].shape == (16, 100)
    assert "16 windows of 100 x 55" in result.output


def test_sample_rejects_bad_options(tmp_path: Path) -> None:
    csv = tmp_path / "s.csv"
    csv.write_text("value\n" + "\n".join(str(float(i % 7)) for i in range(300)))
    result = runner.invoke(app, ["sample", "generic", str(csv), "--n", "0"])
    assert isinstance(result.exception, ConfigError) and "--n" in str(result.exception)
    result = runner.invoke(app, ["sample", "generic", str(csv), "--split", "test"])
    assert isinstance(result.exception, ConfigError)
    result = runner.invoke(app, ["sample", "generic", str(csv), "--window", "50", "--n", "4"])
    assert isinstance(result.exception, ConfigError) and "correlation_break" in str(result.exception)
