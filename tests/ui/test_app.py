"""The workspace's API through FastAPI's test client: security (hosts, origins, paths, uploads,
escaping), the chat against the terminal's threads, a diagnosis with a feedback round trip, and
rule banks (list, sample, generate with its approval)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from anomalygraph.core.errors import ConfigError
from anomalygraph.graphs.analyst import AnalystContext, build_graph, thread_store
from anomalygraph.graphs.analyst.graph import THREADS_FILE, run_config, turn_input
from anomalygraph.llm.factory import register_chat_model
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call
from anomalygraph.ui.app import UIConfig, check_bind, create_app


def series_csv(path: Path, *, column: str = "cpu", n: int = 1200, spike: int = 900) -> Path:
    rng = np.random.default_rng(1)
    t = np.arange(n)
    values = 40 + 5 * np.sin(2 * np.pi * t / 60) + rng.normal(size=n)
    values[spike:spike + 5] += 50
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"timestamp": pd.date_range("2024-05-01", periods=n, freq="5min"), column: values}).to_csv(path, index=False)
    return path


@pytest.fixture
def ws(tmp_path: Path) -> dict[str, Any]:
    data, out = tmp_path / "data", tmp_path / "out"
    csv = series_csv(data / "cpu.csv")
    (tmp_path / "outside.csv").write_text(csv.read_text())
    model = ScriptedChatModel(script=[
        tool_call("NextAction", {"action": "detect"}), tool_call("detect", {"detector": "robust_z"}),
        tool_call("NextAction", {"action": "plot_series"}), tool_call("plot_series", {"start": 850, "end": 950}),
        "The spike is at rows 900..904. <script>alert(1)</script>",
    ])
    config = UIConfig(data_roots=[data.resolve()], out_dir=out.resolve(), max_upload_bytes=200_000, user="tester",
                      model=register_chat_model(model), planner="steps", tools_per_turn=2)
    client = TestClient(create_app(config), base_url="http://127.0.0.1:8501")
    return {"client": client, "data": data.resolve(), "out": out.resolve(), "csv": csv.resolve(), "config": config}


def events(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


# ------------------------------------------------------------------ security
def test_only_loopback_binds_unless_asked() -> None:
    assert check_bind("127.0.0.1", False) == "127.0.0.1" and check_bind("localhost", False) == "localhost"
    with pytest.raises(ConfigError, match="--allow-remote"):
        check_bind("0.0.0.0", False)
    assert check_bind("0.0.0.0", True) == "0.0.0.0"


def test_an_unknown_host_and_a_cross_site_post_are_refused(ws: dict[str, Any]) -> None:
    client = ws["client"]
    assert client.get("/api/threads").status_code == 200
    rebinding = client.get("/api/threads", headers={"host": "evil.example:8501"})
    assert rebinding.status_code == 421 and "does not answer" in rebinding.json()["error"]
    forged = client.post("/api/feedback", headers={"origin": "http://evil.example"},
                         json={"path": str(ws["csv"]), "start": 1, "end": 2, "label": "false"})
    assert forged.status_code == 403 and not (ws["out"] / "feedback").exists()
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text.replace('<script src="/static/app.js" defer></script>', "")  # no inline script


@pytest.mark.parametrize("raw", ["../outside.csv", "{tmp}/outside.csv", "/etc/passwd"])
def test_paths_outside_the_data_roots_are_refused(ws: dict[str, Any], raw: str) -> None:
    response = ws["client"].get("/api/files/summary", params={"path": raw.format(tmp=ws["data"].parent)})
    assert response.status_code == 400 and "outside the configured data roots" in response.json()["error"]


def test_a_symlink_escape_is_refused_and_not_listed(ws: dict[str, Any]) -> None:
    (ws["data"] / "link.csv").symlink_to(ws["data"].parent / "outside.csv")
    response = ws["client"].get("/api/files/summary", params={"path": "link.csv"})
    assert response.status_code == 400 and "outside" in response.json()["error"]
    listed = [f["path"] for f in ws["client"].get("/api/files").json()["files"]]
    assert listed == [str(ws["csv"])]


def test_artifacts_outside_the_output_folder_are_refused(ws: dict[str, Any]) -> None:
    response = ws["client"].get("/api/artifact", params={"path": str(ws["csv"])})
    assert response.status_code == 400 and "outside the output folder" in response.json()["error"]


def test_uploads_are_checked_stored_and_never_overwrite(ws: dict[str, Any]) -> None:
    client, uploads = ws["client"], ws["out"] / "uploads"
    body = ws["csv"].read_bytes()
    first = client.post("/api/files", files={"file": ("../../evil name.csv", body, "text/csv")})
    assert first.status_code == 200, first.text
    stored = Path(first.json()["path"])
    assert stored == uploads / "evil_name.csv" and stored.read_bytes() == body
    assert first.json()["summary"]["length"] == 1200
    second = client.post("/api/files", files={"file": ("evil name.csv", body, "text/csv")})
    assert Path(second.json()["path"]).name == "evil_name-1.csv"
    assert sorted(p.name for p in uploads.iterdir()) == ["evil_name-1.csv", "evil_name.csv"]
    assert not (ws["data"] / "uploads").exists()  # nothing is written into a data root
    # the uploads folder is readable as a root of its own: the stored file can be used at once
    assert client.get("/api/files/summary", params={"path": str(stored)}).json()["length"] == 1200


def test_an_oversize_upload_is_refused_with_the_limit(ws: dict[str, Any]) -> None:
    big = b"x\n" + b"1\n" * 150_000
    response = ws["client"].post("/api/files", files={"file": ("big.csv", big, "text/csv")})
    assert response.status_code == 413 and "0.2 MB" in response.json()["detail"]
    assert not any((ws["out"] / "uploads").iterdir())


@pytest.mark.parametrize(("name", "content", "message"), [
    ("run.exe", b"MZ", "accepts .csv, .parquet, .npy, .txt"),
    ("empty.csv", b"", "empty"),
    ("words.csv", b"timestamp,value\n2024-01-01,abc\n2024-01-02,def\n", "words.csv"),
])
def test_a_bad_upload_shows_the_reason_and_leaves_nothing(ws: dict[str, Any], name: str, content: bytes, message: str) -> None:
    response = ws["client"].post("/api/files", files={"file": (name, content, "text/csv")})
    assert response.status_code == 400 and message in response.json()["error"], response.text
    assert ".upload-" not in response.json()["error"]  # the temporary name never shows
    assert list((ws["out"] / "uploads").iterdir()) == []


def test_a_script_in_a_header_is_data_and_escaped_in_the_report(ws: dict[str, Any]) -> None:
    client = ws["client"]
    header = "<img src=x onerror=alert(1)>"
    csv = series_csv(ws["data"] / "evil.csv", column=header)
    summary = client.get("/api/files/summary", params={"path": str(csv)}).json()
    assert summary["channels"] == [header]  # JSON carries it as text; the page sets textContent
    got = events(client.post("/api/diagnose", json={"path": str(csv), "use_model": False, "detectors": ["robust_z"]}))
    assert got[-1]["type"] == "verdict", got[-1]
    fragment = client.get("/api/diagnosis", params={"path": str(csv)}).text
    assert "&lt;img src=x onerror=alert(1)&gt;" in fragment and header not in fragment


# ---------------------------------------------------------------------- chat
def test_a_chat_turn_streams_tool_steps_and_a_plot_then_resumes(ws: dict[str, Any]) -> None:
    client = ws["client"]
    got = events(client.post("/api/chat", json={"thread": "t1", "question": "Where is the spike?", "file": str(ws["csv"])}))
    kinds = [e["type"] for e in got]
    assert kinds.index("tool_start") < kinds.index("tool_end") < kinds.index("done") == len(kinds) - 1
    ends = [e for e in got if e["type"] == "tool_end"]
    assert [e["name"] for e in ends] == ["detect", "plot_series"] and all(e["outcome"] == "ok" for e in ends)
    plot_url = ends[1]["plot"]
    png = client.get(plot_url)
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    done = got[-1]
    assert "rows 900..904" in done["answer_html"] and "&lt;script&gt;" in done["answer_html"] and "<script>" not in done["answer_html"]
    history = client.get("/api/threads/t1").json()
    (turn,) = history["turns"]
    assert turn["question"] == "Where is the spike?" and [s["name"] for s in turn["steps"]] == ["detect", "plot_series"]
    assert turn["steps"][1]["plot"] == plot_url and history["file"] == str(ws["csv"])
    assert [t["id"] for t in client.get("/api/threads").json()] == ["t1"]
    assert client.post("/api/threads/t1/name", json={"name": "spike hunt"}).status_code == 200
    assert client.get("/api/threads").json()[0]["name"] == "spike hunt"


def test_a_thread_from_the_terminal_opens_in_the_page(ws: dict[str, Any]) -> None:
    """The page reads the same threads file as `anomalygraph chat` (settings' output dir / chat)."""
    model = register_chat_model(ScriptedChatModel(script=[tool_call("NextAction", {"action": "load_series"}), "Hello from the terminal."]))
    ctx = AnalystContext(model=model, data_roots=[str(ws["data"])], output_dir=str(ws["out"] / "chat" / "plots"), planner="steps", tools_per_turn=1)
    with thread_store(ws["out"] / "chat" / THREADS_FILE) as saver:
        build_graph(saver).invoke(turn_input("hi", str(ws["csv"])), run_config("term-1", 5), context=ctx)
    history = ws["client"].get("/api/threads/term-1").json()
    assert history["turns"][0]["question"] == "hi" and "Hello from the terminal." in history["turns"][0]["answer_html"]


def test_a_bad_thread_id_is_a_clear_error(ws: dict[str, Any]) -> None:
    response = ws["client"].post("/api/chat", json={"thread": "../x", "question": "hi"})
    assert response.status_code == 400 and "letters, digits" in response.json()["error"]


# -------------------------------------------------- diagnosis and feedback
def test_diagnosis_feedback_round_trip(ws: dict[str, Any]) -> None:
    client, csv = ws["client"], ws["csv"]
    first = events(client.post("/api/diagnose", json={"path": str(csv), "use_model": False, "detectors": ["robust_z"]}))
    nodes = [e["node"] for e in first if e["type"] == "node"]
    assert nodes[:2] == ["profile", "choose_detectors"] and nodes[-3:] == ["select", "explain", "report"]
    verdict = first[-1]["verdict"]
    top = next(iv for iv in verdict["selection"]["intervals"] if iv["passes"])
    assert top["start"] <= 904 and top["end"] >= 900
    mark = client.post("/api/feedback", json={"path": str(csv), "start": top["start"], "end": top["end"], "label": "false",
                                              "verdict": first[-1]["verdict_path"], "rank": top["rank"]})
    assert mark.status_code == 200 and mark.json()["user"] == "tester" and mark.json()["label"] == "false"
    second = events(client.post("/api/diagnose", json={"path": str(csv), "use_model": False, "detectors": ["robust_z"]}))
    assert second[-1]["type"] == "verdict" and not second[-1]["resumed"]  # recomputed, not the stored verdict
    again = second[-1]["verdict"]
    same = next(iv for iv in again["selection"]["intervals"] if (iv["start"], iv["end"]) == (top["start"], top["end"]))
    assert same["passes"] is False and any("false alarm (tester" in m for m in same["marks"])
    assert [(m["start"], m["label"]) for m in again["feedback"]] == [(top["start"], "false")]
    fragment = client.get("/api/diagnosis", params={"path": str(csv)}).text
    assert "false alarm (by tester" in fragment
    listed = client.get("/api/feedback", params={"path": str(csv)}).json()
    assert [m["verdict"] for m in listed] == [first[-1]["verdict_path"]]


def test_feedback_on_rows_outside_the_series_is_refused(ws: dict[str, Any]) -> None:
    response = ws["client"].post("/api/feedback", json={"path": str(ws["csv"]), "start": 5000, "end": 5001, "label": "real"})
    assert response.status_code == 400 and "5000" in response.json()["error"]


# ---------------------------------------------------------------- rule banks
def test_rule_banks_list_show_and_sample(ws: dict[str, Any]) -> None:
    client = ws["client"]
    banks = client.get("/api/rulebanks").json()
    assert "cutaddpaste" in [b["id"] for b in banks]
    shown = client.get("/api/rulebanks/show", params={"bank": "cutaddpaste"}).json()
    assert shown["rules"] and all(r["operator"] for r in shown["rules"])
    sample = client.post("/api/rulebanks/sample", json={"bank": "cutaddpaste", "path": str(ws["csv"]), "n": 8})
    assert sample.status_code == 200, sample.text
    assert client.get(sample.json()["plot"]).content[:4] == b"\x89PNG"
    outside = client.get("/api/rulebanks/show", params={"bank": str(ws["csv"])})
    assert outside.status_code == 400
