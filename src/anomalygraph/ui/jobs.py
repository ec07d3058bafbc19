"""Long work for the page, each streamed as events: a diagnosis run (one event per finished node)
and a rule-bank generation run (progress, then the approval screen's payload or the result).

The graphs run in a worker thread; their callbacks put events on a queue the response reads,
so the browser sees each node as it finishes rather than one answer at the end.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomalygraph.core.errors import AnomalyGraphError, ConfigError
from anomalygraph.graphs.diagnosis import DiagnosisContext, run_diagnosis
from anomalygraph.graphs.diagnosis.state import DiagnosisVerdict
from anomalygraph.graphs.rulebank_generation import (
    ApprovalDecision,
    GenerationContext,
    GenerationRequest,
    run_generation,
)
from anomalygraph.ui.paths import safe_name

Event = dict[str, Any]
_DONE = object()


def background(work: Callable[[Callable[[Event], None]], Event]) -> Iterator[Event]:
    """Run ``work(emit)`` in a thread; yield what it emits, then its final event (or an error event)."""
    events: queue.Queue[Any] = queue.Queue()

    def target() -> None:
        try:
            events.put(work(events.put))
        except AnomalyGraphError as exc:
            events.put({"type": "error", "message": str(exc)})
        except Exception as exc:  # shown to the user; the server keeps running
            events.put({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        finally:
            events.put(_DONE)

    threading.Thread(target=target, daemon=True, name="ui-job").start()
    while (item := events.get()) is not _DONE:
        yield item


def run_folder(root: Path, path: Path) -> Path:
    """One output folder per input file: readable name, and a hash so two files of one name never share it."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return root / f"{safe_name(path.stem)}-{digest}"


@dataclass
class DiagnosisJobs:
    out_root: Path
    data_roots: list[Path]
    model: str | None = "settings"
    feedback_dir: Path | None = None

    def folder(self, path: Path) -> Path:
        return run_folder(self.out_root, path)

    def run(self, path: Path, *, use_model: bool, detectors: list[str] | None = None, fresh: bool = False) -> Iterator[Event]:
        """Events: ``node`` per finished node, then ``verdict`` (the verdict's JSON and where it was written)."""
        context = DiagnosisContext(model=self.model if use_model else None, data_roots=[str(r) for r in self.data_roots],
                                   feedback_dir=str(self.feedback_dir) if self.feedback_dir else None)
        out = self.folder(path)

        def work(emit: Callable[[Event], None]) -> Event:
            def on_update(node: str, update: dict[str, Any]) -> None:
                emit({"type": "node", "node": node, "detail": _node_detail(node, update)})

            verdict, resumed = run_diagnosis(str(path), out, context, detectors=detectors, resume=not fresh, on_update=on_update)
            return {"type": "verdict", "resumed": resumed, "verdict_path": str(out / "verdict.json"),
                    "verdict": verdict.model_dump(mode="json")}

        return background(work)

    def latest(self, path: Path) -> DiagnosisVerdict | None:
        file = self.folder(path) / "verdict.json"
        return DiagnosisVerdict.model_validate_json(file.read_text(encoding="utf-8")) if file.exists() else None


def _node_detail(node: str, update: dict[str, Any]) -> str:
    """One line on what a finished node produced, for the progress list."""
    if not isinstance(update, dict):
        return ""
    if node == "profile":
        prof = update.get("profile") or {}
        return f"{prof.get('length', '?')} rows, {prof.get('n_channels', '?')} channel(s)"
    if node == "choose_detectors":
        plan = update.get("plan") or {}
        return f"{', '.join(plan.get('detectors', []))} ({plan.get('source', '')})"
    if node == "run_detector":
        recs = update.get("records") or []
        return "; ".join(f"{r.get('detector')}: {r.get('status')}" + (f", {r.get('n_flagged')} rows over threshold" if r.get("status") == "ok" else "")
                         for r in recs)
    if node == "select":
        sel = update.get("selection") or {}
        flagged = sum(1 for iv in sel.get("intervals", []) if iv.get("passes"))
        return f"{' + '.join(sel.get('chosen', []))} ({sel.get('strategy', '')}): {flagged} flagged of {len(sel.get('intervals', []))}"
    if node == "explain":
        return f"{len(update.get('explanations') or [])} interval(s) explained"
    if node == "report":
        return "report written"
    return ""


@dataclass
class RuleBankJobs:
    """Generation runs started from the page; their requests are kept so the approval can resume them."""

    out_root: Path
    data_roots: list[Path]
    pending: dict[str, tuple[GenerationRequest, GenerationContext]] = field(default_factory=dict)

    def start(self, path: Path, scenario: str, name: str, *, train_end: int | None, max_priors: int = 4) -> Iterator[Event]:
        bank = safe_name(name, default="mined")
        if not scenario.strip():
            raise ConfigError("the scenario text is empty; describe the system and its known faults")
        request = GenerationRequest(scenario=scenario, series_path=str(path), out_path=str(self.out_root / f"{bank}.yaml"),
                                    train_end=train_end, name=bank)
        ctx = GenerationContext(max_priors=max_priors, data_roots=[str(r) for r in self.data_roots])
        return self._run(request, ctx, None)

    def decide(self, token: str, decision: ApprovalDecision) -> Iterator[Event]:
        if token not in self.pending:
            raise ConfigError(f"no rule-bank run {token!r} is waiting for approval (the server may have restarted: start it again)")
        request, ctx = self.pending[token]
        return self._run(request, ctx, decision)

    def _run(self, request: GenerationRequest, ctx: GenerationContext, decision: ApprovalDecision | None) -> Iterator[Event]:
        def work(emit: Callable[[Event], None]) -> Event:
            def on_update(node: str, update: dict[str, Any]) -> None:
                trace = (update.get("trace") or [{}])[-1] if isinstance(update, dict) else {}
                emit({"type": "node", "node": node, "detail": str(trace.get("detail") or ""),
                      "seconds": round(float(trace.get("seconds") or 0.0), 2)})

            outcome = run_generation(request, ctx, decision=decision, on_update=on_update)
            if outcome.status == "awaiting_approval" and outcome.pending is not None:
                self.pending[outcome.thread_id] = (request, ctx)
                return {"type": "approval", "token": outcome.thread_id, "request": outcome.pending.model_dump(mode="json")}
            self.pending.pop(outcome.thread_id, None)
            assert outcome.result is not None
            return {"type": "result", "result": outcome.result.model_dump(mode="json")}

        return background(work)
