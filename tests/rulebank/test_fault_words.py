"""The fault vocabulary: wording -> candidate shapes, and fault text -> channel names."""

from __future__ import annotations

from anomalygraph.rulebank.fault_words import FAULT_CUES, cues_in, names_in, shapes_for
from anomalygraph.rulebank.names import MORPHOLOGIES


def test_every_shape_has_cues_and_no_cue_is_unknown() -> None:
    assert set(FAULT_CUES) == set(MORPHOLOGIES) and all(FAULT_CUES.values())


def test_wording_points_to_its_shape_first() -> None:
    assert shapes_for("the level sensor froze for an hour")[0][0] == "flatline"
    assert shapes_for("memory crept up slowly until the restart")[0][0] == "drift"
    assert shapes_for("the feed went offline and read zero")[0][0] == "dropout"
    assert shapes_for("a busy host at night")[0][0] == "contextual"
    assert shapes_for("nothing here names a shape") == []


def test_short_cues_do_not_match_inside_longer_words_but_stems_do() -> None:
    assert "time_warp" not in dict(shapes_for("latency rose"))
    assert "time_warp" in dict(shapes_for("the morning run started late"))
    assert "drift" in dict(shapes_for("a gradual degradation of the seal"))
    assert cues_in("a gradual degradation", "drift") == ["degrad", "gradual"]


def test_names_in_ranks_channels_by_their_words_and_descriptions() -> None:
    names = ["flow_m3h", "pressure_bar", "vibration_mm_s"]
    assert names_in("the pressure reading froze", names) == ["pressure_bar"]
    assert names_in("the casing shook", names, {"vibration_mm_s": "casing vibration velocity"}) == ["vibration_mm_s"]
    assert names_in("nothing relevant", names) == []
