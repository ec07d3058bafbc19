"""Numbers a model quotes must come from what it was given."""

from __future__ import annotations

import pytest

from anomalygraph.llm.grounding import invented_numbers, numbers_in


def test_numbers_are_read_whole_and_normalised():
    assert numbers_in("rows 10033..10136, level -4.0 sigma, peak 9.6, 2015-01-26 00:30, 0.4e+04") == {
        "10033", "10136", "4", "9.6", "2015", "1", "26", "0", "30", "0.4e+04",
    }
    assert numbers_in("cmd12 and C-1 and machine-1-1 deviate") == set()  # names, not numbers


@pytest.mark.parametrize(("answer", "invented"), [
    ("The strongest anomaly is at row 2157.", ["2157"]),
    ("Rows 0..21 stand out, peak score 0.441.", []),
    ("It is sampled every 5 minutes and has 2 intervals.", []),  # single digits: counts and conversions
    ("Peak 0.44 at row 21.", ["0.44"]),  # rounding is not quoting
])
def test_invented_numbers_are_those_in_no_source(answer, invented):
    tool_result = "top_intervals: [{start: 0, end: 21, peak_score: 0.441}]\nstep: 300 s"
    assert invented_numbers(answer, "Where is the strongest anomaly?", tool_result) == invented


def test_channel_names_count_only_as_whole_words_from_the_results():
    from anomalygraph.llm.grounding import invented_names

    channels = ["value", "cmd1", "cmd12", "machine-1-1"]
    assert invented_names("cmd12 deviates most", channels, "top_channel: cmd1") == ["cmd12"]
    assert invented_names("cmd1 deviates most", channels, "top_channel: cmd12") == ["cmd1"]
    assert invented_names("value and machine-1-1 moved", channels, "value: 3 sigma; machine-1-1: 5 sigma") == []
    assert invented_names("the value rose", channels) == []  # an ordinary word, not checked
