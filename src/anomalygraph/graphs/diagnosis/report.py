"""The diagnosis report: Markdown for people, a JSON verdict for programs, PNGs as evidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.data.series import TimeSeries, row_label
from anomalygraph.detectors import detector_names, get_detector_class
from anomalygraph.detectors.fusion import FusionResult
from anomalygraph.graphs.diagnosis.state import (
    DetectorRecord,
    DiagnosisContext,
    DiagnosisState,
    DiagnosisVerdict,
    Explanation,
    PlanRecord,
)
from anomalygraph.llm.factory import model_name
from anomalygraph.prompts import load_prompt

ORIGIN = {"llm": "The model's reading of the statistics below", "statistics": "From the statistics alone"}


def write_report(state: DiagnosisState, series: TimeSeries, ctx: DiagnosisContext) -> DiagnosisVerdict:
    from anomalygraph.plots.detection import plot_detection

    out = Path(state["out_dir"])
    plan = PlanRecord.model_validate(state["plan"])
    latest = {r["detector"]: DetectorRecord.model_validate(r) for r in state.get("records", [])}
    records = [latest[name] for name in plan.detectors if name in latest]
    fusion = FusionResult.model_validate(state["fusion"]) if "fusion" in state else None
    explanations = [Explanation.model_validate(e) for e in state.get("explanations", [])]

    tracks = {r.detector: np.load(r.scores_path, allow_pickle=False) for r in records if r.status == "ok" and r.scores_path}
    if fusion is not None:
        tracks["fused"] = np.load(state["fused_path"], allow_pickle=False)
    overview = plot_detection(
        series, tracks, path=out / "overview.png", title=f"{series.name}: diagnosis",
        thresholds={r.detector: r.threshold.value for r in records if r.threshold}
        | ({"fused": fusion.threshold.value} if fusion else {}),
    )
    model = ctx.chat_model()
    used_model = None if model is None else model_name(model)
    from anomalygraph.llm.messages import PROMPT_TEXT_RENDERING
    from anomalygraph.llm.structured import PROMPTS as STRUCTURED_PROMPTS

    used = ("diagnosis/choose_detectors", "diagnosis/explain_interval", "diagnosis/interval_data", PROMPT_TEXT_RENDERING,
            *STRUCTURED_PROMPTS)
    prompts = [load_prompt(n).ref for n in used]
    report_path = out / "report.md"
    verdict = DiagnosisVerdict(
        series=series.name, source=str(series.meta.get("source", state["path"])), length=series.length,
        n_channels=series.n_channels, plan=plan, detectors=records, fusion=fusion, explanations=explanations,
        report_path=str(report_path), plots=[str(overview), *(e.plot_path for e in explanations)],
        model=used_model, prompt_versions=prompts, notes=list(state.get("notes", [])),
    )
    report_path.write_text(markdown(verdict, series))
    (out / "verdict.json").write_text(verdict.model_dump_json(indent=2))
    return verdict


def markdown(v: DiagnosisVerdict, series: TimeSeries) -> str:
    lines = [f"# Diagnosis: {v.series}", ""]
    n = len(v.fusion.intervals) if v.fusion else 0
    top = v.explanations[0] if v.explanations else None
    if top is not None:
        lines.append(
            f"**Summary.** {n} anomalous interval(s) after fusing {len(v.fusion.detectors) if v.fusion else 0} detectors. "
            f"The strongest, {top.start_time or 'row ' + str(top.interval.start)} to "
            f"{top.end_time or 'row ' + str(top.interval.end)}, is flagged by {len(top.interval.detectors)} detector(s). "
            f"Measured: {top.statistics.splitlines()[0]}"
            + (f" Model's reading: {top.text}" if top.source == "llm" else "")
        )
    else:
        lines.append("**Summary.** No interval rose above the fused threshold.")
    lines += [
        "",
        f"- Source: `{v.source}`, {v.length} rows x {v.n_channels} channel(s)",
        f"- Detectors ({v.plan.source}): {', '.join(v.plan.detectors)}. {v.plan.reason}"
        + (f" ({v.plan.note})" if v.plan.note else ""),
        f"- Model: {v.model or 'none (statistics-only explanations)'}; prompts {', '.join(v.prompt_versions)}",
        "",
        "![overview](overview.png)",
        "",
        "## Detectors",
        "",
        *table_lines(["detector", "status", "fitted on", "threshold", "flagged", "intervals", "fit s", "score s"]),
    ]
    for r in v.detectors:
        if r.status == "ok" and r.threshold is not None:
            lines.append(md_row([r.detector, "ok", r.fitted_on, r.threshold.describe(), r.n_flagged, len(r.intervals),
                                 f"{r.fit_seconds:.2f}", f"{r.score_seconds:.2f}"]))
        else:
            lines.append(md_row([r.detector, f"error: {r.error}", "", "", "", "", "", ""]))
    caveats = [(r.detector, get_detector_class(r.detector).caveat) for r in v.detectors
               if r.detector in detector_names() and get_detector_class(r.detector).caveat]
    if caveats:
        lines += [""] + [f"Caution: {name} {text}; what it alone flags is listed last." for name, text in caveats]
    if v.fusion is not None:
        weights = ", ".join(f"{name} {w:.2f}" for name, w in v.fusion.weights.items())
        lines += ["", f"Fusion: {v.fusion.method} over {', '.join(v.fusion.detectors)} (weights {weights}); "
                  f"threshold {v.fusion.threshold.describe()}.",
                  "", "## Intervals", "", *table_lines(["#", "start", "end", "peak", "agreement", "detectors"])]
        for k, iv in enumerate(v.fusion.intervals[:20], start=1):
            lines.append(md_row([k, row_label(iv.start, series.timestamps), row_label(iv.end, series.timestamps),
                                 f"{iv.peak_score:.2f}", f"{iv.agreement:.0%}", ", ".join(iv.detectors) or "-"]))
    for k, e in enumerate(v.explanations, start=1):
        lines += ["", f"### Interval {k}: {e.start_time or e.interval.start} .. {e.end_time or e.interval.end}", "",
                  f"{e.text}", "", f"_{ORIGIN[e.source]}._", "",
                  "```", e.statistics, "```", "", f"![interval {k}]({Path(e.plot_path).name})"]
    if v.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in v.notes]
    return "\n".join(lines) + "\n"
