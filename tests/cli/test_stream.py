"""``anomalygraph stream``: a real file through CALM on the DirectRunner; bad input is exit 2 in one line."""

from __future__ import annotations

import json

from anomalygraph.cli.main import main

FILE = "NAB/data/artificialWithAnomaly/art_daily_jumpsup.csv"
FAST = ["--set", "warmup=600", "--set", "batch_size=5", "--forecaster-set", "context_length=32",
        "--forecaster-set", "horizon=4", "--forecaster-set", "epochs=5", "--forecaster-set", "threads=1"]


def test_stream_writes_every_point_judgments_and_model_versions(shared_data, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["stream", "--source", str(shared_data / FILE), "--out", str(out), "--judge", "keep_all",
                 "--disorder", "3", "--duplicates", "0.01", *FAST])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    scored = [json.loads(line) for line in (out / "scored.jsonl").read_text().splitlines()]
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    models = [json.loads(line) for line in (out / "models.jsonl").read_text().splitlines()]
    judgments = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    assert len({r["timestamp"] for r in scored}) == len(scored) == 4032  # the file's rows, each once
    assert rejected and {r["reason"] for r in rejected} == {"duplicate"}
    assert {m["version"] for m in models} >= {1, 2} and all(j["decision"] == "KEEP" for j in judgments)
    assert "CALM on DirectRunner" in printed.out and str(max(m["version"] for m in models)) in printed.out
    assert (out / "judgment_log").is_dir() and any((out / "models").iterdir())


def test_bad_input_is_one_line_and_exit_2(shared_data, tmp_path, capsys) -> None:
    path = str(shared_data / FILE)
    cases = [
        (["stream", "--source", str(tmp_path / "missing.csv")], "missing.csv"),
        (["stream", "--source", path, "--runner", "NoSuchRunner"], "--runner must be one of"),
        (["stream", "--source", path, "--set", "k=-1"], "invalid stream settings: k"),
        (["stream", "--source", path, "--forecaster", "nope"], "nope"),
        (["stream", "--source", path, "--forecaster", "timesfm"], "timesfm"),
        (["stream", "--source", path, "--speed", "0"], "--speed must be above 0"),
        (["stream", "--source", path, "--workers", "2", "--runner", "PortableRunner"], "--workers applies to DirectRunner"),
    ]
    for argv, message in cases:
        assert main([*argv, "--out", str(tmp_path / "x")]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
