"""Nodes of the APE post-training graph. Each reads the files the previous one wrote (paths in the state)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from anomalygraph.core.errors import ConfigError
from anomalygraph.data.cache import cached_series
from anomalygraph.data.series import TimeSeries
from anomalygraph.detectors import Detector, create_detector
from anomalygraph.detectors.ape import APEConfig
from anomalygraph.detectors.ape.provenance import read_record
from anomalygraph.graphs.ape_post_training.state import (
    Accuracy,
    APEContext,
    APERequest,
    APEState,
    APEVerdict,
)
from anomalygraph.graphs.context import context_of
from anomalygraph.metrics.evaluate import evaluate_scores, has_labelled_events
from anomalygraph.rulebank.post_training import (
    NCAD,
    post_train_detector,
    resolve_pseudo,
    save_post_trained,
)
from anomalygraph.rulebank.sampler import PAGSampler

Node = Callable[[APEState, Runtime[APEContext]], dict[str, Any]]
CHANGE = 0.01  # |delta VUS-PR| below this is reported as unchanged (a reporting word, not a selection rule)


def timed(name: str, fn: Node) -> Node:
    @wraps(fn)
    def node(state: APEState, runtime: Runtime[APEContext]) -> dict[str, Any]:
        started = time.perf_counter()
        update = fn(state, runtime)
        return {**update, "timings": {**state.get("timings", {}), name: round(time.perf_counter() - started, 2)}}

    return node


def request_of(state: APEState) -> APERequest:
    return APERequest.model_validate(state["request"])


def series_of(state: APEState, ctx: APEContext) -> TimeSeries:
    """The request's series, read once per process (every node needs it)."""
    from anomalygraph.tools.context import resolve_in_roots

    return cached_series(resolve_in_roots(request_of(state).series_path, ctx.roots()))


def out_dir(state: APEState) -> Path:
    path = Path(request_of(state).out_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def bank(state: APEState, runtime: Runtime[APEContext]) -> dict[str, Any]:
    """Resolve the pseudo-anomaly source: a named or stored bank, NCAD, or a bank mined now by the prior miner."""
    request, ctx = request_of(state), context_of(runtime, APEContext)
    if request.bank == NCAD:
        return {"bank_path": None}
    if request.bank != "generate":
        resolve_pseudo(request.bank)  # fail here, with the bank's own message, not three nodes later
        return {"bank_path": request.bank}
    if not request.scenario:
        raise ConfigError("bank 'generate' needs the scenario text (request.scenario)")
    from anomalygraph.graphs.rulebank_generation import (
        GenerationContext,
        GenerationRequest,
        run_generation,
    )
    from anomalygraph.tools.context import resolve_in_roots

    target = out_dir(state) / "mined_bank.yaml"
    outcome = run_generation(
        GenerationRequest(scenario=request.scenario, out_path=str(target), work_dir=str(out_dir(state) / "mining"),
                          series_path=str(resolve_in_roots(request.series_path, ctx.roots()))),
        GenerationContext(model=ctx.model, llm_config=ctx.llm_config, data_roots=ctx.data_roots, gpu=ctx.gpu,
                          auto_approve=True, max_steps=ctx.max_steps),
        resume=True,
    )
    if outcome.result is None or outcome.result.bank_path is None:
        raise ConfigError(f"mining a bank did not finish ({getattr(outcome.result, 'status', 'no result')})")
    return {"bank_path": outcome.result.bank_path}


def sample(state: APEState, runtime: Runtime[APEContext]) -> dict[str, Any]:
    """A grid of the bank's pseudo-anomalies on the training rows, so a reader sees what the backbone is shown."""
    if state.get("bank_path") is None:
        return {"samples_plot": None}
    from anomalygraph.plots.rulebank import plot_pseudo_anomalies

    ctx = context_of(runtime, APEContext)
    series = series_of(state, ctx).train()
    pseudo = resolve_pseudo(state["bank_path"])
    window = int(create_detector(request_of(state).backbone, **request_of(state).fit).config.window)  # type: ignore[attr-defined]
    batch = PAGSampler(pseudo, series, window=max(8, window), seed=0).sample(12)  # type: ignore[arg-type]
    path = plot_pseudo_anomalies(batch, out_dir(state) / "samples.png", channel_names=series.channels,
                                 title=f"{getattr(pseudo, 'name', pseudo)} on {series.name}")
    return {"samples_plot": str(path)}


def fit(state: APEState, runtime: Runtime[APEContext]) -> dict[str, Any]:
    request, ctx = request_of(state), context_of(runtime, APEContext)
    series = series_of(state, ctx)
    detector = create_detector(request.backbone, **request.fit)
    if not hasattr(detector, "encode"):
        raise ConfigError(f"'{request.backbone}' has no encoder, so APE cannot post-train it")
    detector.fit(series.train())
    folder = detector.save(out_dir(state) / "backbone")
    scores = out_dir(state) / "scores_before.npy"
    np.save(scores, detector.score(series))
    return {"backbone_dir": str(folder), "before_scores": str(scores)}


def post_train(state: APEState, runtime: Runtime[APEContext]) -> dict[str, Any]:
    request, ctx = request_of(state), context_of(runtime, APEContext)
    series = series_of(state, ctx)
    detector = Detector.load(state["backbone_dir"])
    pseudo = NCAD if state.get("bank_path") is None else state["bank_path"]
    record = post_train_detector(detector, series.train(), pseudo, APEConfig(**request.ape))  # type: ignore[arg-type]
    folder = save_post_trained(detector, record, out_dir(state) / "post_trained")  # type: ignore[arg-type]
    scores = out_dir(state) / "scores_after.npy"
    np.save(scores, detector.score(series))
    return {"artifact_dir": str(folder), "after_scores": str(scores)}


def _accuracy(series: TimeSeries, scores: np.ndarray) -> Accuracy | None:
    if not has_labelled_events(series):
        return None
    m = evaluate_scores(series, scores, float(np.quantile(scores, 0.99)))
    return Accuracy(vus_pr=m.vus_pr, auc_pr=m.auc_pr)


def report(state: APEState, runtime: Runtime[APEContext]) -> dict[str, Any]:
    """Before/after on the rows after the training split (labels read for reporting only), the plot, the verdict."""
    from anomalygraph.plots.detection import plot_detection

    request, ctx = request_of(state), context_of(runtime, APEContext)
    series = series_of(state, ctx)
    before, after = np.load(state["before_scores"]), np.load(state["after_scores"])
    record = read_record(state["artifact_dir"])
    acc_before, acc_after = _accuracy(series, before), _accuracy(series, after)
    delta = None if acc_before is None or acc_after is None else acc_after.vus_pr - acc_before.vus_pr
    outcome = "unmeasured" if delta is None else "improved" if delta > CHANGE else "worse" if delta < -CHANGE else "unchanged"
    rep = record.report
    source = record.bank.name if record.bank is not None else record.source
    plot = plot_detection(series, {f"{request.backbone} before": before, f"{request.backbone} after APE ({source})": after},
                          path=out_dir(state) / "before_after.png", title=f"APE post-training on {series.name}")
    sentences = [
        f"{request.backbone} was post-trained on {series.name} with {source} pseudo-anomalies for {rep.epochs_run} epoch(s) "
        f"(best {rep.best_epoch}; -1 means the starting weights stayed best).",
        f"On held-out training windows the backbone's score separates pseudo-anomalies from normal windows with AUC "
        f"{rep.before.pseudo_auc:.3f} before and {rep.after.pseudo_auc:.3f} after; cos(z_raw, z_pa) went from "
        f"{rep.before.negative_similarity:.3f} to {rep.after.negative_similarity:.3f}.",
    ]
    if delta is None:
        sentences.append("The file has no labelled anomaly after its training split, so real accuracy was not measured.")
    else:
        sentences.append(f"On the labelled rows after the training split, VUS-PR went from {acc_before.vus_pr:.3f} to "  # type: ignore[union-attr]
                         f"{acc_after.vus_pr:.3f} ({delta:+.3f}): {outcome}.")  # type: ignore[union-attr]
    verdict = APEVerdict(
        series=series.name, backbone=request.backbone, source=record.source,
        bank=None if record.bank is None else record.bank.model_dump(), artifact=state["artifact_dir"],
        before=acc_before, after=acc_after, delta_vus_pr=delta, pseudo_auc_before=rep.before.pseudo_auc,
        pseudo_auc_after=rep.after.pseudo_auc, negative_similarity_before=rep.before.negative_similarity,
        negative_similarity_after=rep.after.negative_similarity, outcome=outcome, plot=str(plot),
        samples_plot=state.get("samples_plot"), explanation=" ".join(sentences),
    )
    (out_dir(state) / "verdict.json").write_text(json.dumps(verdict.model_dump(mode="json"), indent=2))
    return {"verdict": verdict.model_dump(mode="json")}
