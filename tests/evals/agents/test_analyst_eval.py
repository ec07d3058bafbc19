"""The analyst eval: the question set (kinds, the split by series), recipes checked against
independent sources, the runner and its tables with a scripted model, the CLI's --split, and
(slow) the CI subset with the real embedded model. The graders' tables are in
test_analyst_graders.py, the recipes on the real files in test_analyst_recipes.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from anomalygraph.cli import eval as eval_cli
from anomalygraph.core.errors import ConfigError
from anomalygraph.data.loaders import load_series
from anomalygraph.evals.agents import analyst_eval as ev
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call
from anomalygraph.tools import TOOL_NAMES


def q(**kw) -> ev.Question:
    base = {"id": "x", "kind": "count", "split": "tune", "path": "f.csv", "question": "?", "recipe": "label_events",
            "grade": "number", "tools": ["load_series"]}
    return ev.Question(**{**base, **kw})


# ---------------------------------------------------------------- questions
def test_every_question_computes_its_answer_on_the_real_data(shared_data):
    questions = ev.load_questions()
    assert len(questions) >= 40 and len({x.id for x in questions}) == len(questions)
    assert any(x.ci for x in questions)
    assert {x.grade for x in questions} == set(ev.GRADERS)
    assert {x.kind for x in questions} == set(ev.KINDS)
    for x in questions:
        assert set(x.tools) <= set(TOOL_NAMES), x.id
        text, gold, _ = ev.prepare(x, shared_data)
        assert x.path in text and "{" not in text, x.id
        assert gold.display


def test_the_split_is_by_series_and_balanced_across_kinds():
    questions = ev.load_questions()
    splits_of: dict[str, set[str]] = {}
    for x in questions:
        splits_of.setdefault(x.path, set()).add(x.split)
    assert not [path for path, splits in splits_of.items() if len(splits) > 1], "a series has questions in both splits"
    for kind in ev.KINDS:
        counts = {split: sum(x.kind == kind and x.split == split for x in questions) for split in ev.SPLITS}
        assert min(counts.values()) >= 2 and max(counts.values()) - min(counts.values()) <= 1, (kind, counts)
    tune, validate = ev.load_questions(split="tune"), ev.load_questions(split="validate")
    assert len(tune) + len(validate) == len(questions) and {x.split for x in validate} == {"validate"}
    ci = ev.load_questions(subset="ci")
    assert 1 <= len(ci) <= 4 and ci == ev.load_questions(subset="ci", split="validate")  # CI questions are validate ones


def test_label_counts_match_the_nab_windows_file(shared_data):
    windows = json.loads((shared_data / "NAB" / "labels" / "combined_windows.json").read_text())
    for x in ev.load_questions():
        if x.recipe == "label_events" and x.path.startswith("NAB/"):
            _, gold, _ = ev.prepare(x, shared_data)
            assert gold.value == len(windows[x.path.removeprefix("NAB/data/")]), x.id


def test_recipes_on_series_with_known_answers(tmp_path):
    rng = np.random.default_rng(3)
    n = 3000
    t = np.arange(n)
    value = np.sin(2 * np.pi * t / 50) + 0.1 * rng.normal(size=n)
    other = rng.normal(size=n)
    labels = np.zeros(n, dtype=int)
    labels[1000:1010] = 1
    value[1000:1010] += 3  # small labelled event
    labels[2500:2520] = 1
    other[2505] += 40  # large labelled event, in the second channel, on a later day
    value[2500:2520] += 6
    stamps = pd.date_range("2024-01-01", periods=n, freq="10min")
    path = tmp_path / "s.csv"
    pd.DataFrame({"timestamp": stamps, "value": value, "other": other, "label": labels}).to_csv(path, index=False)
    series = load_series(path)
    assert ev.label_events(path, series, q()).value == 2
    assert ev.row_count(path, series, q()).value == n
    assert ev.sampling_interval(path, series, q()).value == 600.0
    assert ev.dominant_period(path, series, q()).value == 50
    assert ev.largest_labelled_day(path, series, q()).value == str(stamps[2500].date())
    assert ev.labelled_rows(path, series, q(params={"event": 1})).value == [2500, 2519]
    top = ev.top_deviating_channel(path, series, q(params={"event": 1}))
    assert top.value == "other" and top.fields == {"start": 2500, "end": 2519}
    with pytest.raises(ConfigError, match="event 5 does not exist"):
        ev.labelled_rows(path, series, q(params={"event": 5}))


# ------------------------------------------------------------------ graders
@pytest.mark.parametrize(("answer", "gold", "tol", "correct"), [
    ("The file has 5 labelled anomaly windows.", 5, 0, True),
    ("It has five labelled windows.", 5, 0, True),
    ("There are no labelled anomalies.", 0, 0, True),
    ("It has 4 windows.", 5, 0, False),
    ("Maybe 1, 2, 3, 4, 5 or 6 windows.", 5, 0, False),  # hedged
    ("It has 4,032 rows.", 4032, 0, True),
    ("The period is 290 rows.", 288, 0.02, True),
    ("The period is 300 rows.", 288, 0.02, False),
    ("Rows of NAB/data/x_5.csv: none given", 5, 0, False),  # digits in paths are not answers
])
def test_number_grader(answer, gold, tol, correct, tmp_path):
    verdict = ev.grade(answer, q(tolerance=tol), ev.Gold(value=gold, display=str(gold)), None)
    assert verdict.correct is correct, verdict


@pytest.mark.parametrize(("answer", "correct"), [
    ("It is sampled every 30 minutes.", True),
    ("The sampling is 0 days 00:30:00.", True),
    ("Every half an hour.", True),
    ("1800 s between rows", True),
    ("Every 5 min.", False),
    ("Hourly.", False),
])
def test_duration_grader(answer, correct):
    verdict = ev.grade(answer, q(grade="duration"), ev.Gold(value=1800.0, display="1800 s"), None)
    assert verdict.correct is correct, verdict


@pytest.mark.parametrize(("answer", "correct"), [
    ("The largest anomaly is on 2013-12-16, from 2013-12-16 05:00 to 2013-12-17 01:00.", True),
    ("2014-02-08.", False),
    ("Either 2013-12-16, 2014-01-28 or 2014-02-08.", False),
    ("In mid December.", False),
])
def test_day_grader(answer, correct):
    verdict = ev.grade(answer, q(grade="day"), ev.Gold(value="2013-12-16", display=""), None)
    assert verdict.correct is correct, verdict


@pytest.mark.parametrize(("answer", "correct"), [
    ("Rows 4173..4224 hold the anomaly.", True),
    ("The anomaly is at rows 4057-4183.", True),
    ("Rows 7370..7500.", False),
    ("See UCR/135_UCR_Anomaly_InternalBleeding16_1200_4187_4199.txt.", False),  # the file name is not an answer
    ("Rows 10, 500, 1000, 2000, 3000, 4190, 5000, 6000, 7000, 7400.", False),  # hedged
])
def test_rows_grader(answer, correct):
    verdict = ev.grade(answer, q(grade="rows", tolerance=100), ev.Gold(value=[4186, 4198], display=""), None)
    assert verdict.correct is correct, verdict


@pytest.mark.parametrize(("answer", "gold", "correct"), [
    ("The 'value' channel deviates most (316 sigma).", "value", True),
    ("Channel value deviates most.", "value", True),
    ("cmd12 has the largest value.", "value", False),  # 'value' as a plain word is not the channel
    ("cmd9 deviates most, then cmd7.", "cmd9", True),
    ("cmd19.", "cmd9", False),  # no partial match
    ("cmd1, cmd2, cmd3 and cmd9.", "cmd9", False),  # hedged
])
def test_channel_grader(answer, gold, correct, tmp_path):
    series = type("S", (), {"channels": ["value", *[f"cmd{i}" for i in range(1, 25)]]})()
    verdict = ev.grade(answer, q(grade="channel"), ev.Gold(value=gold, display=gold), series)
    assert verdict.correct is correct, verdict


# ------------------------------------------------------------------- runner
def scripted_pair():
    """A scripted model: right about nyc_taxi via load_series; a bad call, then a wrong channel for T-5
    (twice: the grounding check asks again when an answer names a channel no tool result named)."""
    return ScriptedChatModel(script=[
        tool_call("NextAction", {"action": "load_series"}),
        "NAB/data/realKnownCause/nyc_taxi.csv has 5 labelled anomaly windows.",
        tool_call("NextAction", {"action": "explain_window"}),
        tool_call("explain_window", {"start": 3472, "end": 99999}),
        tool_call("NextAction", {"action": "explain_window"}),
        tool_call("explain_window", {"start": 3472, "end": 3497}),
        "cmd12 deviates most.",
        "cmd12 deviates most.",
    ])


def test_run_eval_scores_answers_and_tool_calls_and_writes_tables(shared_data, tmp_path):
    questions = ev.load_questions(ids=["nab_taxi_events", "msl_t5_top_channel"])
    report = ev.run_eval(scripted_pair(), shared_data, questions, out_dir=tmp_path, subset="selected", planner="steps")
    first, second = report.results
    assert first.correct and first.tool_calls == 1 and first.valid_calls == 1 and first.expected_tool_used
    assert not second.correct and second.grade_reason.startswith("wrong channel")
    assert second.tool_calls == 2 and second.valid_calls == 1 and second.validity == 0.5
    assert "-> tool_error" in second.calls[0]
    assert report.accuracy == 0.5 and report.tool_call_validity == pytest.approx(2 / 3, abs=1e-3)
    assert report.strategy == "guided" and "analyst/system@v1" in report.prompt_versions
    paths = ev.write_report(report, tmp_path)
    table = paths["markdown"].read_text()
    assert "**Accuracy 50%**" in table and "| nab_taxi_events | count | 5 |" in table
    assert report.per_kind["count"].accuracy == 1.0 and report.per_kind["channel"].accuracy == 0.0
    assert report.per_kind["channel"].tool_call_validity == 0.5 and list(report.per_kind) == ["count", "channel"]
    assert "| channel | 1 | 0 | 0% | 50% |" in table
    assert len(paths["csv"].read_text().splitlines()) == 3 and paths["csv"].read_text().startswith("id,kind,split,")
    assert ev.EvalReport.model_validate_json(paths["json"].read_text()).n_questions == 2


def test_cli_runs_selected_questions_with_the_configured_model(shared_data, tmp_path, monkeypatch):
    from anomalygraph.llm import factory

    monkeypatch.setattr(factory, "get_chat_model", lambda settings=None: scripted_pair())
    app = typer.Typer()
    app.add_typer(eval_cli.app, name="eval")
    result = CliRunner().invoke(app, [
        "eval", "analyst", "--planner", "steps", "--data", str(shared_data), "--out", str(tmp_path / "out"),
        "-q", "nab_taxi_events", "-q", "msl_t5_top_channel",
    ])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "table.md").exists() and "Accuracy 50%" in result.output


@pytest.fixture
def recorded_eval(monkeypatch):
    """``run_eval`` replaced by a recorder: which questions and split the CLI chose, no model run."""
    from anomalygraph.llm import factory

    calls: list[dict] = []

    def fake(model, data_root, questions, **kwargs):
        calls.append({"ids": [x.id for x in questions], "splits": {x.split for x in questions}, **kwargs})
        return ev.EvalReport(model="fake", provider="scripted", strategy="guided", subset=kwargs["subset"], split=kwargs["split"],
                             max_steps=6, tools_per_turn=1, n_questions=0, accuracy=0.0, tool_call_validity=None,
                             expected_tool_rate=0.0, mean_seconds=0.0, total_seconds=0.0, prompt_versions=[], created="now",
                             results=[])

    monkeypatch.setattr(factory, "get_chat_model", lambda settings=None: ScriptedChatModel(script=["unused"]))
    monkeypatch.setattr(ev, "run_eval", fake)
    return calls


@pytest.mark.parametrize(("args", "split", "n_splits"), [
    ([], "validate", {"validate"}),
    (["--split", "tune"], "tune", {"tune"}),
    (["--split", "all"], "all", {"tune", "validate"}),
    (["--subset", "ci"], "all", {"validate"}),  # the CI questions, whatever their split
    (["-q", "ucr_bleeding_where", "-q", "nab_taxi_events"], "selected", {"tune", "validate"}),
])
def test_cli_split_option_chooses_the_questions(recorded_eval, shared_data, tmp_path, args, split, n_splits):
    app = typer.Typer()
    app.add_typer(eval_cli.app, name="eval")
    result = CliRunner().invoke(app, ["eval", "analyst", "--data", str(shared_data), "--out", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    [call] = recorded_eval
    assert call["split"] == split and call["splits"] == n_splits
    if split in ("validate", "tune"):
        assert call["ids"] == [x.id for x in ev.load_questions(split=split)]
    assert f"of the {split} split" in " ".join(result.output.split())  # the table, as rich renders it


def test_cli_strategy_reaches_the_eval(recorded_eval, shared_data, tmp_path):
    app = typer.Typer()
    app.add_typer(eval_cli.app, name="eval")
    result = CliRunner().invoke(app, ["eval", "analyst", "--data", str(shared_data), "--out", str(tmp_path),
                                      "--strategy", "native"])
    assert result.exit_code == 0, result.output
    assert recorded_eval[0]["strategy"] == "native"


@pytest.mark.parametrize(("argv", "message"), [
    (["eval", "analyst", "--split", "test"], "--split must be validate, tune or all"),
    (["eval", "analyst", "--subset", "ci", "--split", "tune"], "no question is in both subset ci and split tune"),
    (["eval", "analyst", "--strategy", "magic"], "--strategy must be auto, native or guided"),
])
def test_cli_bad_split_is_a_one_line_error(recorded_eval, shared_data, argv, message, capsys):
    from anomalygraph.cli.main import main

    assert main([*argv, "--data", str(shared_data)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not recorded_eval


def test_cli_reports_the_split_it_ran(shared_data, tmp_path, monkeypatch):
    """The CI question of the validate split, end to end with a scripted model: the report names the split."""
    from anomalygraph.llm import factory

    script = [tool_call("NextAction", {"action": "load_series"}), "It has 5 labelled anomaly windows."]
    monkeypatch.setattr(factory, "get_chat_model", lambda settings=None: ScriptedChatModel(script=script))
    app = typer.Typer()
    app.add_typer(eval_cli.app, name="eval")
    result = CliRunner().invoke(app, ["eval", "analyst", "--planner", "steps", "--subset", "ci", "--split", "validate",
                                      "--data", str(shared_data), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = ev.EvalReport.model_validate_json((tmp_path / "results.json").read_text())
    assert report.split == "validate" and report.subset == "ci" and report.accuracy == 1.0
    assert report.per_kind["count"].n == 1 and report.results[0].split == "validate"
    assert "**validate** split" in (tmp_path / "table.md").read_text()


def test_unknown_question_and_bad_subset_are_config_errors():
    with pytest.raises(ConfigError, match="no question"):
        ev.load_questions(ids=["nope"])
    with pytest.raises(ConfigError, match="split must be tune, validate or all"):
        ev.load_questions(split="test")  # type: ignore[arg-type]



def test_a_series_in_both_splits_is_refused(tmp_path):
    entry = {"kind": "count", "path": "a.csv", "question": "?", "recipe": "label_events", "grade": "number", "tools": ["load_series"]}
    questions = [{**entry, "id": "one", "split": "tune"}, {**entry, "id": "two", "split": "validate"}]
    path = tmp_path / "q.yaml"
    path.write_text(yaml.safe_dump({"version": 2, "questions": questions}))
    with pytest.raises(ConfigError, match=r"\['a.csv'\] have questions in both splits"):
        ev.load_questions(path)
    assert [x.id for x in ev.load_questions(subset="ci")] == [x.id for x in ev.load_questions() if x.ci]


# ------------------------------------------------ the real embedded model
def _embedded_missing() -> str | None:
    from anomalygraph.llm.assets import ASSETS, missing_packages
    from anomalygraph.llm.embedded import llama_cpp_installed

    if not llama_cpp_installed():
        return "llama-cpp-python is not installed"
    missing = missing_packages(ASSETS["qwen2.5-coder-0.5b"])
    return f"the embedded model is not installed ({', '.join(missing)})" if missing else None


@pytest.mark.slow
@pytest.mark.integration
def test_ci_subset_with_the_embedded_model(shared_data, tmp_path):
    reason = _embedded_missing()
    if reason:
        pytest.skip(reason)
    from anomalygraph.llm.factory import get_chat_model

    questions = ev.load_questions(subset="ci")
    report = ev.run_eval(get_chat_model(), shared_data, questions, out_dir=tmp_path, subset="ci")
    paths = ev.write_report(report, tmp_path)
    [result] = report.results
    assert result.error is None and result.answer
    assert result.tool_calls >= 1 and result.valid_calls >= 1  # the grounding rule forces a real call
    assert report.strategy == "guided"
    print(paths["markdown"].read_text())
