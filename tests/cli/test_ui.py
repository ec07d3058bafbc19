"""``anomalygraph ui`` from the command line: a non-loopback bind is refused unless asked for."""

from __future__ import annotations

import pytest

from anomalygraph.cli.main import main


def test_a_public_bind_without_allow_remote_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--host", "0.0.0.0", "--port", "8599"]) == 2
    err = capsys.readouterr().err
    assert "--allow-remote" in err and "Traceback" not in err


def test_a_bad_planner_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--planner", "guess"]) == 2
    assert "--planner must be kinds or steps" in capsys.readouterr().err
