"""Paths from the browser: refused outside the data roots / output folder, whatever the spelling."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomalygraph.core.errors import DataError
from anomalygraph.ui.paths import artifact_path, data_path, safe_name


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "sub").mkdir(parents=True)
    (r / "sub" / "a.csv").write_text("x\n1\n")
    (tmp_path / "secret.csv").write_text("x\n2\n")
    return r


def test_inside_paths_resolve_relative_to_the_first_root(root: Path) -> None:
    assert data_path("sub/a.csv", [root]) == (root / "sub" / "a.csv").resolve()
    assert data_path(str(root / "sub" / "a.csv"), [root]) == (root / "sub" / "a.csv").resolve()


@pytest.mark.parametrize("raw", ["../secret.csv", "sub/../../secret.csv", "{tmp}/secret.csv", "/etc/passwd"])
def test_dotdot_and_absolute_escapes_are_refused(root: Path, raw: str) -> None:
    with pytest.raises(DataError, match="outside the configured data roots"):
        data_path(raw.format(tmp=root.parent), [root])


def test_a_symlink_out_of_the_root_is_refused(root: Path) -> None:
    (root / "link.csv").symlink_to(root.parent / "secret.csv")
    (root / "linkdir").symlink_to(root.parent, target_is_directory=True)
    for raw in ("link.csv", "linkdir/secret.csv"):
        with pytest.raises(DataError, match="outside the configured data roots"):
            data_path(raw, [root])


def test_artifacts_are_served_only_from_the_output_folder_and_by_type(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "plot.png").write_bytes(b"\x89PNG")
    (out / "threads.sqlite").write_bytes(b"x")
    assert artifact_path(str(out / "plot.png"), out) == (out / "plot.png").resolve()
    with pytest.raises(DataError, match="outside the output folder"):
        artifact_path(str(out / ".." / "out2" / "plot.png"), out)
    with pytest.raises(DataError, match="only serves"):
        artifact_path(str(out / "threads.sqlite"), out)


@pytest.mark.parametrize(("name", "expected"), [
    ("../../etc/passwd", "passwd"), ("..\\..\\boot.ini", "boot.ini"), (".bashrc", "bashrc"),
    ("<script>x</script>.csv", "script_.csv"), ("", "file"),
])
def test_safe_name_keeps_a_plain_base_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected
