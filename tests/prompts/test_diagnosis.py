"""The diagnosis prompts, rendered: the data message before each explanation question, as a
template and as the graph sends it, and the report's list of prompt versions."""

from __future__ import annotations

import pytest

from anomalygraph.graphs.diagnosis import DiagnosisContext, run_diagnosis
from anomalygraph.llm.scripted import ScriptedChatModel
from anomalygraph.llm.structured import PROMPTS as STRUCTURED_PROMPTS
from anomalygraph.prompts import load_prompt
from tests.prompts.test_files import shipped_names
from tests.synthetic import server_csv


def test_interval_data_renders_exactly() -> None:
    template = load_prompt("diagnosis/interval_data")
    assert template.version == 1
    assert template.render(series="server", first=1440, last=1579) == "The series server around the interval (rows 1440..1579)."


@pytest.fixture
def series_file(tmp_path):
    return server_csv(tmp_path / "server.csv", length=2000, burst=(1500, 1520), height=60.0)


def test_explanation_data_message_and_provenance(series_file, tmp_path) -> None:
    model = ScriptedChatModel(script=["CPU jumps for twenty minutes, far above its usual range."], repeat_last=True)
    verdict, _ = run_diagnosis(str(series_file), tmp_path / "out", DiagnosisContext(model=model, data_roots=[tmp_path]),
                               detectors=["robust_z"])
    iv = verdict.explanations[0].interval
    pad = max(3 * (iv.end - iv.start + 1), 50)
    first, last = max(0, iv.start - pad), min(2000, iv.end + 1 + pad) - 1
    data, _question = model.calls[0]
    assert data.content.startswith(
        f"The series server around the interval (rows {first}..{last}).\n\n"
        "The plot is not shown to you; this is a textual rendering of the same data.\n"
    )
    diagnosis = {n for n in shipped_names() if n.startswith("diagnosis/")}
    expected = {load_prompt(n).ref for n in [*diagnosis, "llm/plot_as_text", *STRUCTURED_PROMPTS]}
    assert set(verdict.prompt_versions) == expected
