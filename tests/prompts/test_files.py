"""Every prompt file under ``anomalygraph/prompts``: it loads, has a version, ships as package data,
and renders with exactly the variables its callers pass; a missing variable fails loudly."""

from __future__ import annotations

import re
import string
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from anomalygraph.core.errors import ConfigError
from anomalygraph.prompts import PromptTemplate, load_prompt

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "anomalygraph"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

CALLERS: dict[str, dict[str, object]] = {
    **{f"judge/{v}": {"series_id": "cpu", "timestamp": "2024-01-01 00:04:00", "actual": "50", "predicted": "4.5",
                      "lower": "3", "upper": "6", "position": "above the upper bound", "before": "2, 3, 4",
                      "after": "6, 8, 10", "n_before": 3, "n_after": 3, "mean_before": "3", "std_before": "0.816497",
                      "mean_after": "8", "std_after": "1.63299"}
       for v in ("judge_v1", "judge_paraphrase_a", "judge_paraphrase_b")},
    # name: the values its callers pass (by keyword), with representative types
    "analyst/system": {"file_line": "The user's file: x.csv", "roots": "/data"},
    "analyst/plan": {"question": "Q?", "menu": "- detect: d", "done": "none", "left": 3},
    "analyst/classify": {"question": "Q?", "kinds": "- when: when an anomaly happens"},
    "analyst/respond_facts": {"facts": "- detect: iforest flags 1 interval(s)"},
    "analyst/act": {"tool": "detect", "question": "Q?", "file_hint": ""},
    "analyst/respond": {"question": "Q?", "budget_note": ""},
    "analyst/file_named": {"file": "x.csv"},
    "analyst/file_unnamed": {},
    "analyst/plan_answer": {"answer": "answer"},
    "analyst/plan_no_calls": {},
    "analyst/plan_calls": {"calls": "- load_series(path=x.csv): ok"},
    "analyst/act_file_bound": {"file": "x.csv"},
    "analyst/act_file_named": {"file": "x.csv"},
    "analyst/act_unknown_tool": {"tool": "bogus"},
    "analyst/act_too_long": {"error": ValueError("too long")},
    "analyst/call_not_json": {},
    "analyst/call_unreadable": {"tool": "detect", "error": "bad"},
    "analyst/call_unknown_tool": {"tool": "nope", "tools": "load_series, detect"},
    "analyst/call_invalid_args": {"tool": "detect", "errors": "- detector: bad"},
    "analyst/call_duplicate": {"tool": "detect"},
    "analyst/call_crashed": {"tool": "detect", "error_type": "RuntimeError", "error": RuntimeError("boom")},
    "analyst/call_warnings": {"warnings": "w1; w2"},
    "analyst/call_not_run": {"max_steps": 6},
    "analyst/respond_no_steps": {},
    "analyst/respond_all_failed": {},
    "analyst/respond_invented": {"instruction": "Answer.", "numbers": "1, 2"},
    "analyst/exchange_result": {"call": "detect()", "result": "ok"},
    "analyst/exchange_error": {"call": "detect()", "result": "bad"},
    "analyst/recap_header": {"recaps": "- The user asked: Q?"},
    "analyst/recap_question": {"question": "Q?"},
    "analyst/recap_tools": {"calls": "detect()"},
    "analyst/recap_failed": {},
    "analyst/recap_answer": {"answer": "A."},
    "diagnosis/choose_detectors": {"profile": "p", "detectors": "- iforest: i", "hardware": "CPU only"},
    "diagnosis/explain_interval": {
        "series": "s", "channels": "a, b", "start": "row 1", "end": "row 2", "start_row": 1, "end_row": 2,
        "detectors": "iforest", "agreement": 0.5, "peak": 1.25, "statistics": "stats",
    },
    "diagnosis/interval_data": {"series": "s", "first": 0, "last": 9},
    "diagnosis/choose_track": {"profile": "s, 10 rows", "roles": "1 value", "table": "name | rank", "strategies": "- fusion: f",
                               "default": "fusion"},
    "llm/chat_system": {},
    "llm/prompted_tools": {"tools": '{"name": "detect"}'},
    "llm/structured_json": {"schema": "Finding", "json_schema": "{}"},
    "llm/structured_tool": {"schema": "Finding"},
    "llm/structured_repair": {"schema": "Finding", "answer": "x", "problems": "- p", "instruction": "Again."},
    "llm/structured_again_json": {"schema": "Finding"},
    "llm/structured_again_tool": {"schema": "Finding"},
    "llm/structured_again_schema": {"schema": "Finding"},
    "llm/plot_as_text": {},
    "llm/bench_warmup": {},
    "llm/bench_generate": {},
    "llm/bench_case": {},
    "rulebank/system": {},
    "rulebank/shapes": {},
    "rulebank/list_faults": {"scenario": "S", "max_faults": 3},
    "rulebank/series_context": {"scenario": "S", "facts": "F"},
    "rulebank/propose_prior": {"fault": "leak", "channels": "a, b", "units": "steps", "candidates": "C"},
    "rulebank/fix_prior": {"fault": "leak", "previous": "{}", "problem": "P"},
    "rulebank/critique": {"scenario": "S", "fault": "leak", "rule": "R", "samples": "X"},
}


def shipped_names() -> list[str]:
    root = resources.files("anomalygraph").joinpath("prompts")
    names: list[str] = []

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".txt"):
                names.append(prefix + child.name[: -len(".txt")])

    walk(root, "")
    return sorted(names)


def fields(template: PromptTemplate) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template.text) if f is not None}


def test_every_prompt_file_is_listed_with_its_callers_values() -> None:
    names = shipped_names()
    assert names, "no prompt files found"
    assert sorted(CALLERS) == names


@pytest.mark.parametrize("name", sorted(CALLERS))
def test_prompt_loads_has_a_version_and_renders_with_its_callers_values(name: str) -> None:
    template = load_prompt(name)
    assert template.name == name
    assert isinstance(template.version, int) and template.version >= 1
    assert template.ref == f"{name}@v{template.version}"
    assert template.text and template.text == template.text.strip()
    # the callers pass exactly what the template uses: no variable is left out, none is ignored
    assert fields(template) == set(CALLERS[name])
    text = template.render(**CALLERS[name])
    assert text.strip() and not re.search(r"\{[A-Za-z_]\w*\}", text)  # no placeholder left (literal JSON braces may stay)


@pytest.mark.parametrize("name", [n for n in sorted(CALLERS) if CALLERS[n]])
def test_a_missing_variable_fails_loudly(name: str) -> None:
    template = load_prompt(name)
    for missing in CALLERS[name]:
        values = {k: v for k, v in CALLERS[name].items() if k != missing}
        with pytest.raises(ConfigError, match=rf"prompt {name} v{template.version} needs a value for '{missing}'"):
            template.render(**values)


def test_bad_names_and_missing_files_are_config_errors() -> None:
    for bad in ("", "analyst/", "../analyst/system", "analyst/./system"):
        with pytest.raises(ConfigError, match="bad prompt name"):
            load_prompt(bad)
    with pytest.raises(ConfigError, match="no prompt template named 'analyst/nothing_here'"):
        load_prompt("analyst/nothing_here")


def test_every_prompt_file_is_package_data() -> None:
    package_data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]["anomalygraph"]
    shipped = {
        str(p.relative_to(PACKAGE / "prompts").with_suffix("")).replace("\\", "/")
        for pattern in package_data if pattern.startswith("prompts/")
        for p in PACKAGE.glob(pattern)
    }
    assert shipped == set(shipped_names())


def test_prompt_files_declare_their_version_first() -> None:
    for name in shipped_names():
        raw = (PACKAGE / "prompts" / f"{name}.txt").read_text(encoding="utf-8")
        head, sep, _ = raw.partition("\n---\n")
        assert sep and head.startswith("version: ") and head[len("version: "):].isdigit(), name
