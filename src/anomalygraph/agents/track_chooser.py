"""The LLM's choice of the track a diagnosis rests on: one more selection strategy, fed the measurements.

The model sees the surrogate metrics of every candidate (synthetic-anomaly VUS-PR per kind,
centrality, aggregated rank) and the strategies, with the one chosen on the tune fold named as
the default; it answers one name. A name that is neither a candidate nor a strategy, or no
usable answer, falls back to the default and says so. The choice is measured in the same table
as every other strategy (``anomalygraph eval diagnosis --selection llm``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.errors import AnomalyGraphError
from anomalygraph.detectors.selection import FIXED_PREFIX, STRATEGIES, CandidateSurrogates
from anomalygraph.prompts import load_prompt

PROMPT = "diagnosis/choose_track"
STRATEGY_TEXT = {
    "best_on_tune": "the single candidate with the best mean VUS-PR on the tune fold",
    "fusion": "agreement-weighted fusion of iforest, sub_pca and matrix_profile on all channels jointly",
    "fusion@channels": "agreement-weighted fusion of iforest, sub_pca and matrix_profile, each per measured channel",
    "fusion@both": "agreement-weighted fusion of iforest, sub_pca and matrix_profile, jointly and per measured channel",
    "surrogate": "the candidate with the best rank",
    "surrogate_top3": "the mean of the three best-ranked candidates",
}


class TrackChoice(BaseModel):
    """The schema the model answers in."""

    model_config = ConfigDict(extra="forbid")

    choice: str = Field(max_length=80, description="one candidate name or one strategy name")
    reason: str = Field(max_length=400, description="one sentence")


class ChosenTrack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(description="the strategy to apply: a listed strategy or fixed:<candidate>")
    reason: str
    source: str = Field(description="'llm', or 'default' when the model's answer was unusable")
    note: str | None = None


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def candidate_table(surrogates: Mapping[str, CandidateSurrogates]) -> str:
    rows = ["name | rank | planted all | point | level | shape | centrality"]
    for name, s in sorted(surrogates.items(), key=lambda kv: (kv[1].rank is None, kv[1].rank or 0.0)):
        rows.append(" | ".join([name, _f(s.rank), *(_f(s.synthetic.get(k)) for k in ("all", "point", "level", "shape")),
                                _f(s.centrality)]))
    return "\n".join(rows)


def choose_track(model: object, *, profile: str, roles: str, surrogates: Mapping[str, CandidateSurrogates],
                 candidates: Sequence[str], default: str) -> ChosenTrack:
    """Ask ``model`` for a strategy; the default (with a note) when it answers nothing usable."""
    from anomalygraph.llm.structured import structured

    strategies = "\n".join(f"- {name}: {STRATEGY_TEXT[name]}" for name in STRATEGIES)
    prompt = load_prompt(PROMPT).render(profile=profile, roles=roles, table=candidate_table(surrogates),
                                        strategies=strategies, default=default)
    try:
        answer = structured(model, TrackChoice, prompt)  # type: ignore[arg-type]
    except AnomalyGraphError as exc:
        return ChosenTrack(strategy=default, reason="the default", source="default", note=f"the model's choice was unusable: {exc}")
    name = answer.choice.strip().strip("`'\"").removeprefix(FIXED_PREFIX)
    if name in STRATEGIES:
        return ChosenTrack(strategy=name, reason=answer.reason, source="llm")
    if name in candidates:
        return ChosenTrack(strategy=f"{FIXED_PREFIX}{name}", reason=answer.reason, source="llm")
    return ChosenTrack(strategy=default, reason="the default", source="default",
                       note=f"the model chose {answer.choice!r}, which is neither a candidate nor a strategy")
