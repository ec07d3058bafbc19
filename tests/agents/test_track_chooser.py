"""The model's choice of track: a strategy or a candidate by name, the default for anything else."""

from __future__ import annotations

from anomalygraph.agents.track_chooser import candidate_table, choose_track
from anomalygraph.detectors.selection import CandidateSurrogates
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call

TABLE = {
    "iforest": CandidateSurrogates(synthetic={"all": 0.31, "point": 0.1}, centrality=0.4, rank=2.0),
    "sub_pca@channels": CandidateSurrogates(synthetic={"all": 0.62, "shape": 0.7}, centrality=0.3, rank=1.0),
}


def ask(answer):
    model = ScriptedChatModel(script=[tool_call("TrackChoice", answer)] if isinstance(answer, dict) else answer)
    chosen = choose_track(model, profile="s, 100 rows", roles="1 value", surrogates=TABLE, candidates=list(TABLE),
                          default="fusion@channels")
    return chosen, model


def test_a_candidate_becomes_a_fixed_strategy_and_the_prompt_carries_the_measurements():
    chosen, model = ask({"choice": "sub_pca@channels", "reason": "best on planted shapes"})
    assert (chosen.strategy, chosen.source) == ("fixed:sub_pca@channels", "llm")
    prompt = str(model.calls[0][-1].content)
    assert "sub_pca@channels | 1.00 | 0.62 | - | - | 0.70 | 0.30" in prompt and '"fusion@channels" was the best choice' in prompt


def test_a_strategy_name_is_kept():
    chosen, _ = ask({"choice": "surrogate_top3", "reason": "several candidates look alike"})
    assert chosen.strategy == "surrogate_top3"


def test_an_unknown_name_or_garbage_falls_back_to_the_default_with_a_note():
    chosen, _ = ask({"choice": "lstm_magic", "reason": "deep"})
    assert chosen.strategy == "fusion@channels" and chosen.source == "default" and "lstm_magic" in chosen.note
    chosen, _ = ask(["not json", "still not", "{}"])
    assert chosen.strategy == "fusion@channels" and chosen.source == "default" and "unusable" in chosen.note


def test_table_lists_the_best_rank_first():
    assert candidate_table(TABLE).splitlines()[1].startswith("sub_pca@channels | 1.00")
