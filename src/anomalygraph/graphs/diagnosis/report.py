"""The diagnosis report: Markdown for people, a JSON verdict for programs, PNGs as evidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anomalygraph.core.tables import md_row, table_lines
from anomalygraph.data.feedback import LABEL_TEXT, FeedbackMark
from anomalygraph.data.series import TimeSeries, row_label
from anomalygraph.detectors import detector_names, get_detector_class
from anomalygraph.graphs.diagnosis.state import (
    FEEDBACK_PREFIX,
    DetectorRecord,
    DiagnosisContext,
    DiagnosisState,
    DiagnosisVerdict,
    Explanation,
    PlanRecord,
    SelectionRecord,
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
    selection = SelectionRecord.model_validate(state["selection"]) if "selection" in state else None
    explanations = [Explanation.model_validate(e) for e in state.get("explanations", [])]

    tracks = {r.detector: np.load(r.scores_path, allow_pickle=False) for r in records if r.status == "ok" and r.scores_path}
    if selection is not None:
        tracks["selected"] = np.load(state["fused_path"], allow_pickle=False)
    overview = plot_detection(
        series, tracks, path=out / "overview.png", title=f"{series.name}: diagnosis",
        thresholds={r.detector: r.threshold.value for r in records if r.threshold}
        | ({"selected": selection.threshold.value} if selection else {}),
        intervals={"selected": selection.flagged} if selection else None,
    )
    model = ctx.chat_model()
    used_model = None if model is None else model_name(model)
    from anomalygraph.llm.messages import PROMPT_TEXT_RENDERING
    from anomalygraph.llm.structured import PROMPTS as STRUCTURED_PROMPTS

    used = ("diagnosis/choose_detectors", "diagnosis/choose_track", "diagnosis/explain_interval", "diagnosis/interval_data",
            PROMPT_TEXT_RENDERING,
            *STRUCTURED_PROMPTS)
    prompts = [load_prompt(n).ref for n in used]
    report_path = out / "report.md"
    verdict = DiagnosisVerdict(
        series=series.name, source=str(series.meta.get("source", state["path"])), length=series.length,
        n_channels=series.n_channels, plan=plan, detectors=records, selection=selection, explanations=explanations,
        report_path=str(report_path), plots=[str(overview), *(e.plot_path for e in explanations)],
        model=used_model, prompt_versions=prompts, notes=list(state.get("notes", [])),
        feedback=[FeedbackMark.model_validate(m) for m in state.get("feedback", [])],
    )
    report_path.write_text(markdown(verdict, series))
    (out / "verdict.json").write_text(verdict.model_dump_json(indent=2))
    return verdict


def markdown(v: DiagnosisVerdict, series: TimeSeries) -> str:
    lines = [f"# Diagnosis: {v.series}", ""]
    sel = v.selection
    flagged = sel.flagged if sel else []
    top = v.explanations[0] if v.explanations else None
    if sel is not None and flagged and top is not None:
        lines.append(
            f"**Summary.** {len(flagged)} flagged interval(s) of {len(sel.intervals)} ranked candidates on "
            f"`{' + '.join(sel.chosen)}`. The strongest, {top.start_time or 'row ' + str(top.interval.start)} to "
            f"{top.end_time or 'row ' + str(top.interval.end)}, stands {top.interval.robust_z:.1f} robust sigma above "
            f"the fit rows and is flagged by {len(top.interval.detectors)} detector(s) on their own. "
            f"Measured: {top.statistics.splitlines()[0]}"
            + (f" Model's reading: {top.text}" if top.source == "llm" else "")
        )
    elif sel is not None:
        falses = sum(1 for iv in sel.intervals if iv.marks and iv.marks[-1].startswith(LABEL_TEXT["false"]))
        unmarked = (f"No candidate is flagged: {falses} ranked interval(s) are marked as false alarms and none other rose "
                    "above the threshold") if falses else "No candidate rose above the threshold"
        lines.append(f"**Summary.** {unmarked} ({sel.threshold.describe()}); "
                     f"the {len(sel.intervals)} strongest near misses are ranked below.")
    else:
        lines.append("**Summary.** No detector finished, so there is no verdict.")
    lines += [
        "",
        f"- Source: `{v.source}`, {v.length} rows x {v.n_channels} channel(s)"
        + (f"; channels: {sel.roles}" if sel is not None and v.n_channels > 1 else ""),
        f"- Detectors ({v.plan.source}): {', '.join(v.plan.detectors)}. {v.plan.reason}"
        + (f" ({v.plan.note})" if v.plan.note else ""),
        f"- Model: {v.model or 'none (statistics-only explanations)'}; prompts {', '.join(v.prompt_versions)}",
        "",
        "![overview](overview.png)",
        "",
        "## Detectors",
        "",
        *table_lines(["detector", "status", "fitted on", "candidates", "joint threshold", "flagged", "intervals", "seconds"]),
    ]
    for r in v.detectors:
        if r.status == "ok" and r.threshold is not None:
            lines.append(md_row([r.detector, "ok", r.fitted_on, ", ".join(r.candidates), r.threshold.describe(), r.n_flagged,
                                 len(r.intervals), f"{r.fit_seconds or 0:.2f}"]))
        else:
            lines.append(md_row([r.detector, f"error: {r.error}", "", "", "", "", "", ""]))
    caveats = [(r.detector, get_detector_class(r.detector).caveat) for r in v.detectors
               if r.detector in detector_names() and get_detector_class(r.detector).caveat]
    if caveats:
        lines += [""] + [f"Caution: {name} {text}; what it alone flags is listed last." for name, text in caveats]
    lines += feedback_lines(v)
    if sel is not None:
        weights = ", ".join(f"{name} {w:.2f}" for name, w in sel.weights.items())
        lines += ["", "## Selection", "",
                  f"Strategy `{sel.strategy}`: {sel.reason}; the verdict rests on {weights}. "
                  f"Threshold: {sel.threshold.describe()}.", ""]
        if sel.strategy.startswith(FEEDBACK_PREFIX):
            lines += [f"Selection switched because of feedback: the strategy `{sel.strategy.removeprefix(FEEDBACK_PREFIX)}` "
                      f"chose another track, and `{' + '.join(sel.chosen)}` ranks the marked intervals better.", ""]
        ranked = sorted(((s.rank, n) for n, s in sel.surrogates.items() if s.rank is not None))
        if ranked:
            lines += ["Surrogate metrics of every candidate (no labels: VUS-PR on anomalies planted in the fit rows, "
                      "and rank agreement with the other candidates):", "",
                      *table_lines(["candidate", "rank", "planted: all", "point", "level", "shape", "centrality"])]
            for rank, name in ranked[:12]:
                s = sel.surrogates[name]
                lines.append(md_row([name + (" (chosen)" if name in sel.chosen else ""), f"{rank:.1f}",
                                     *(_f(s.synthetic.get(k)) for k in ("all", "point", "level", "shape")), _f(s.centrality)]))
            lines.append("")
        lines += ["## Ranked intervals", "",
                  "Candidate intervals of the selected track, strongest first; `flagged` marks those above the threshold "
                  "(unless marked as a false alarm); `marks` lists the feedback on each.", "",
                  *table_lines(["#", "start", "end", "peak z", "flagged", "agreement", "detectors", "channels", "marks"])]
        shown = sorted(sel.intervals, key=lambda iv: iv.rank)
        # every interval that carries a mark is listed, even past the first 20
        for iv in [iv for k, iv in enumerate(shown) if k < 20 or iv.marks]:
            lines.append(md_row([iv.rank, row_label(iv.start, series.timestamps), row_label(iv.end, series.timestamps),
                                 f"{iv.robust_z:.1f}", "yes" if iv.passes else "no", f"{iv.agreement:.0%}",
                                 ", ".join(iv.detectors) or "-", ", ".join(iv.channels) or "-", "; ".join(iv.marks) or "-"]))
    for k, e in enumerate(v.explanations, start=1):
        state = "flagged" if e.interval.passes else "near miss, below the threshold"
        lines += ["", f"### Interval {k} ({state}): {e.start_time or e.interval.start} .. {e.end_time or e.interval.end}", "",
                  f"{e.text}", "", f"_{ORIGIN[e.source]}._", "",
                  "```", e.statistics, "```", "", f"![interval {k}]({Path(e.plot_path).name})"]
    if v.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in v.notes]
    return "\n".join(lines) + "\n"


def feedback_lines(v: DiagnosisVerdict) -> list[str]:
    """The Feedback section: every mark the run used, with its rows, times, label, who, when and on what."""
    if not v.feedback:
        return []
    real = sum(m.label == "real" for m in v.feedback)
    lines = ["", "## Feedback", "",
             f"{len(v.feedback)} mark(s) on this file ({real} real anomaly, {len(v.feedback) - real} false alarm), "
             "the latest per interval. They are known labels on this series: selection switches to a candidate "
             "only when it gets more of them right at its own threshold, and a false alarm is never flagged.", "",
             *table_lines(["rows", "start", "end", "label", "by", "at (UTC)", "made on", "rank then", "note"])]
    for m in v.feedback:
        lines.append(md_row([m.rows, m.start_time or f"row {m.start}", m.end_time or f"row {m.end}", LABEL_TEXT[m.label],
                             m.user, f"{m.at:%Y-%m-%d %H:%M:%S}", m.verdict or "-",
                             "-" if m.interval_rank is None else m.interval_rank, m.note or "-"]))
    return lines


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
