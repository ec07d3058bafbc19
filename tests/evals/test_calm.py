"""CALM's evaluation: the same scored points for every variant, the static control, judge counts, coverage."""

from __future__ import annotations

from anomalygraph.agents.judge import RuleJudge
from anomalygraph.cli.main import main
from anomalygraph.data.loaders import load_series
from anomalygraph.evals import calm as ev
from anomalygraph.streaming.config import StreamConfig

FILE = "NAB/data/realAdExchange/exchange-3_cpm_results.csv"
FORECASTER = {"context_length": 32, "horizon": 4, "hidden": 16, "epochs": 5, "threads": 1}


def test_static_never_fine_tunes_and_keep_all_does_on_the_same_points(shared_data, tmp_path) -> None:
    series = load_series(shared_data / FILE)
    base = StreamConfig(forecaster_config=FORECASTER, batch_size=5)
    rows = ev.run_calm_eval([("nab", "exchange-3", series)], tmp_path, variants=("static", "keep_all", "rule"), base=base)
    by = {r.variant: r for r in rows}
    assert by["static"].finetunes == 0 and by["static"].keep + by["static"].remove == by["static"].flagged
    assert by["keep_all"].remove == 0 and by["keep_all"].finetunes == by["keep_all"].keep // 5
    assert len({r.scored for r in rows}) == 1 and rows[0].scored == len(series.values) - ev.warmup_of(series)
    assert all(r.roc_auc is not None and 0 < r.coverage_first <= 1 for r in rows)
    text = (tmp_path / "calm_eval.md").read_text()
    delta = by["keep_all"].roc_auc - by["static"].roc_auc
    assert f"{delta:+.3f}" in text and "| static | rule | off |" in text
    assert len(ev.read_rows(tmp_path / "rows.jsonl")) == 3


def test_a_warm_up_the_user_sets_is_a_floor_for_every_series(shared_data, tmp_path) -> None:
    """`--set warmup=N` (TTM needs its context first): the series' own warm-up is used only when longer."""
    series = load_series(shared_data / FILE)
    own = ev.warmup_of(series)
    longer = StreamConfig(forecaster_config=FORECASTER, warmup=own + 200)
    (row,) = ev.run_calm_eval([("nab", "x", series)], tmp_path / "a", variants=("static",), base=longer)
    assert row.scored == len(series.values) - own - 200
    (row,) = ev.run_calm_eval([("nab", "x", series)], tmp_path / "b", variants=("static",),
                              base=StreamConfig(forecaster_config=FORECASTER, warmup=64))
    assert row.scored == len(series.values) - own  # shorter than the series' own: the series' wins


def test_flag_contexts_are_judgeable_and_centred_on_the_flag(shared_data, tmp_path) -> None:
    series = load_series(shared_data / FILE)
    config = StreamConfig(forecaster_config=FORECASTER, warmup=ev.warmup_of(series), batch_size=ev.NEVER)
    scored, *_ = ev.run_variant(ev.univariate_points(series, "x"), config, RuleJudge(), tmp_path)
    evaluated = [p for p in scored if p.score is not None]
    eligible = sum(p.flagged for p in evaluated[5:-5])
    contexts = ev.flag_contexts(evaluated, 5, 3)
    assert eligible > 3 and len(contexts) == 3
    assert len(ev.flag_contexts(evaluated, 5, 10_000)) == eligible
    flagged = {f"{p.key}@{p.timestamp:.6f}": p for p in scored if p.flagged}
    for c in contexts:
        assert c.actual == flagged[c.point_id].value and len(c.before) == len(c.after) == 5
        assert RuleJudge().judge(c).decision in ("KEEP", "REMOVE")


def test_eval_calm_refuses_bad_input_in_one_line(shared_data, capsys) -> None:
    for argv, message in [(["eval", "calm", "--variants", "nope"], "--variants: unknown"),
                          (["eval", "calm", "--fold", "x"], "--fold must be"),
                          (["eval", "calm", "--set", "batch_size=0"], "invalid --set: batch_size")]:
        assert main([*argv, "--data", str(shared_data)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
