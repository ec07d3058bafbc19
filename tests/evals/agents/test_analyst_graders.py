"""The analyst eval's graders, table by table: the usual ways of writing each answer are read,
and answers that merely contain digits (a wrong day, no day, a row index, a file name, a clock
time, a hedge) are not accepted."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from anomalygraph.evals.agents import analyst_graders as g


def ask(grade: str, tolerance: float = 0.0, **params) -> SimpleNamespace:
    return SimpleNamespace(grade=grade, tolerance=tolerance, params=params)


# --------------------------------------------------------------------------- days
@pytest.mark.parametrize(("answer", "correct", "reason"), [
    ("2015-07-10", True, "match"),
    ("The largest anomaly is on July 10, 2015.", True, "match"),
    ("On 10 July 2015.", True, "match"),
    ("Jul 10 2015", True, "match"),
    ("2015/07/10", True, "match"),
    ("10.07.2015 (day first)", True, "match"),
    ("Friday, July 10th, 2015, around noon", True, "match"),
    ("the 10th of July, 2015", True, "match"),
    ("10-Jul-2015", True, "match"),
    ("at 2015-07-10T12:00:00Z", True, "match"),
    ("from 2015-07-10 05:00 to 2015-07-11 01:00", True, "match"),
    ("rows 4187..4199 (2015-07-09 23:00:00 to 2015-07-11 01:00:00, peak at row 4190 on 2015-07-10)", True, "match"),
    ("25/07/2015", False, "wrong day"),  # unambiguous, and another day
    ("07/10/2015", False, "ambiguous date"),  # 10 July or 7 October: not read
    ("10-07-2015", False, "ambiguous date"),
    ("07.10.2015", False, "wrong day"),  # dotted is day first: 7 October
    ("July 11, 2015", False, "wrong day"),
    ("In July 2015.", False, "no day given"),
    ("On July 10.", False, "no day given"),  # no year
    ("At row 4187.", False, "no day given"),  # a row index is not a day
    ("Row 20150710 is the peak.", False, "no day given"),
    ("See data/2015-07-10.csv", False, "no day given"),  # a file name's digits
    ("2015-02-30", False, "ambiguous date"),  # impossible
    ("Either 2015-07-09, 2015-07-10 or 2015-07-11.", False, "hedged: 3 days"),
    ("2015-07-09 to 2015-07-11, or 2015-07-10, or 2015-08-01", False, "hedged: 4 days"),
])
def test_day_grader(answer, correct, reason):
    verdict = g.grade(answer, ask("day"), "2015-07-10")
    assert verdict.correct is correct and verdict.reason.startswith(reason), verdict


def test_unambiguous_slashed_dates_are_read_either_way_round():
    assert g.days_in("07/25/2015 and 25/07/2015 and 07/07/2015")[0] == ["2015-07-25", "2015-07-07"]


# ---------------------------------------------------------------------- durations
@pytest.mark.parametrize(("answer", "gold", "correct"), [
    ("5 minutes", 300, True),
    ("Every 5 min.", 300, True),
    ("every 5 mins", 300, True),
    ("300 seconds between rows", 300, True),
    ("a 5-minute step", 300, True),
    ("five minutes", 300, True),
    ("0.5 hours", 1800, True),
    ("half an hour", 1800, True),
    ("every half-hour", 1800, True),
    ("a quarter of an hour", 900, True),
    ("hourly", 3600, True),
    ("once an hour", 3600, True),
    ("an hour", 3600, True),
    ("daily", 86400, True),
    ("sampled every 0 days 00:30:00", 1800, True),
    ("PT30M", 1800, True),
    ("10 sec", 10, True),
    ("half an hour", 3600, False),  # not "an hour"
    ("hourly", 1800, False),
    ("every 5 minutes", 1800, False),
    ("at 00:30:00", 1800, False),  # a clock time is not a step
    ("5", 300, False),  # no unit
    ("300 rows", 300, False),
    ("on 2015-07-10", 300, False),
    ("every 1 min, 2 min, 5 min or 10 min", 300, False),  # hedged
])
def test_duration_grader(answer, gold, correct):
    verdict = g.grade(answer, ask("duration"), float(gold))
    assert verdict.correct is correct, verdict


# --------------------------------------------------------------------------- rows
@pytest.mark.parametrize(("answer", "correct", "reason"), [
    ("rows 4187 to 4199", True, "match"),
    ("4187-4199", True, "match"),
    ("4187–4199", True, "match"),
    ("from row 4187 through 4199", True, "match"),
    ("between 4187 and 4199", True, "match"),
    ("between rows 4187 and row 4199", True, "match"),
    ("rows 4,187..4,199", True, "match"),
    ("x[4186:4199]", True, "match"),
    ("the strongest interval, rows 4150…4230", True, "match"),  # within the 50-row slack
    ("around row 4190", True, "match (one row)"),
    ("rows 0 to 7500", False, "range too wide"),
    ("rows 7370..7500", False, "wrong rows"),
    ("rows 4187 and 4199 are normal; the anomaly is at rows 6000-6050", False, "wrong rows"),
    ("UCR/135_UCR_Anomaly_InternalBleeding16_1200_4187_4199.txt", False, "no rows given"),  # the file name is no answer
    ("On 2015-07-10 at 12:00.", False, "no rows given"),
    ("2 intervals", False, "no rows given"),  # a count is not a row
    ("rows 10, 500, 1000, 2000, 3000, 4190, 5000, 6000, 7000, 7400", False, "hedged"),
    ("1..100, 200..300, 4187..4199, 5000..5100", False, "hedged"),
])
def test_rows_grader(answer, correct, reason):
    verdict = g.grade(answer, ask("rows", tolerance=50), [4186, 4198])
    assert verdict.correct is correct and verdict.reason.startswith(reason), verdict


# ------------------------------------------------------------------------ numbers
@pytest.mark.parametrize(("answer", "gold", "correct"), [
    ("It has 4,032 rows.", 4032, True),
    ("10\u202f320 rows", 10320, True),  # thin-space thousands
    ("It has three windows.", 3, True),
    ("There are no labelled anomalies.", 0, True),
    ("On July 10, 2015 there are 3 windows.", 3, True),
    ("1,2,3", 123, False),  # three numbers, not one hundred and twenty-three
    ("On July 10, 2015.", 10, False),  # a date's digits are not a count
    ("At 12:05.", 5, False),  # nor a clock's
    ("4.032 rows", 4032, False),  # a decimal point, not a separator
])
def test_number_grader_reads_separators_and_ignores_dates(answer, gold, correct):
    verdict = g.grade(answer, ask("number"), gold)
    assert verdict.correct is correct, verdict


# ----------------------------------------------------------------------- channels
CHANNELS = ["value", *[f"cmd{i}" for i in range(1, 25)]]


@pytest.mark.parametrize(("answer", "gold", "correct"), [
    ("The 'value' channel deviates most.", "value", True),
    ("value (spike, peak 315.7 sigma), cmd19 (spike, peak 13.2 sigma)", "value", True),  # explain_window's words
    ("cmd9 deviates most, then cmd7.", "cmd9", True),
    ("cmd7, then cmd9.", "cmd9", False),  # the first named is the answer
    ("cmd12 has the largest value.", "value", False),  # 'value' as a plain word is not the channel
    ("The channel that deviates most from its surroundings there is value.", "value", True),
    ("The channel with the highest value is cmd3.", "value", False),
    ("cmd19.", "cmd9", False),
    ("cmd1, cmd2, cmd3 and cmd9.", "cmd9", False),  # hedged
])
def test_channel_grader(answer, gold, correct):
    verdict = g.grade(answer, ask("channel"), gold, CHANNELS)
    assert verdict.correct is correct, verdict


# ---------------------------------------------------------------------- detectors
DETECTORS = ["iforest", "sub_pca", "matrix_profile"]


@pytest.mark.parametrize(("answer", "gold", "correct"), [
    ("iforest and sub_pca flag it, matrix_profile does not.", ["iforest", "sub_pca"], True),
    ("Only sub_pca flags it; iforest and matrix_profile do not.", ["sub_pca"], True),
    ("Neither iforest nor sub_pca flags it, only matrix_profile.", ["matrix_profile"], True),
    ("Isolation Forest and the matrix profile flag the window.", ["iforest", "matrix_profile"], True),
    ("iforest does not flag it, sub_pca does", ["sub_pca"], True),
    ("iforest flags it but sub_pca and matrix_profile miss it.", ["iforest"], True),
    ("All three detectors flag it.", DETECTORS, True),
    ("None of iforest, sub_pca or matrix_profile flag an interval there.", [], True),
    ("No detector flags those rows.", [], True),
    ("iforest, sub_pca and matrix_profile all flag it.", ["iforest", "sub_pca"], False),  # one too many
    ("sub_pca flags it.", ["iforest", "sub_pca"], False),  # one missing
    ("iforest, sub_pca and matrix_profile do not flag it", ["sub_pca"], False),
    ("iforest or sub_pca", ["sub_pca"], False),  # hedged
    ("The window is flagged.", ["sub_pca"], False),  # no detector named
])
def test_detectors_grader(answer, gold, correct):
    verdict = g.grade(answer, ask("detectors", detectors=DETECTORS), gold)
    assert verdict.correct is correct, verdict


# ------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(("answer", "gold", "correct"), [
    ("It is a level shift.", "level_shift", True),
    ("A level shift, not a spike.", "level_shift", True),
    ("This is not a spike but a level shift", "level_shift", True),
    ("a step change up that persists", "level_shift", True),
    ("A sharp downward spike (a dip).", "dip", True),
    ("It isn't a spike; it's a dip.", "dip", True),
    ("The values are stuck at a constant value: a flatline.", "flatline", True),
    ("flat-lined for 200 rows", "flatline", True),
    ("A spike (morphology: spike, peak 316 sigma).", "spike", True),
    ("A spike followed by a level shift", "spike", True),
    ("A spike followed by a level shift", "level_shift", False),  # the first shape named is the answer
    ("a spike or a dip", "dip", False),  # hedged
    ("spike, dip, level shift", "spike", False),  # hedged
    ("The value jumps and drops.", "level_shift", False),  # ambiguous words are not read
    ("It is flat.", "flatline", False),
    ("Not a spike.", "spike", False),
    ("See NAB/data/artificialNoAnomaly/art_flatline.csv", "flatline", False),  # a file name
])
def test_shape_grader(answer, gold, correct):
    verdict = g.grade(answer, ask("shape"), gold)
    assert verdict.correct is correct, verdict


def test_no_answer_and_unknown_grader():
    assert g.grade("  ", ask("number"), 3).reason == "no answer"
    with pytest.raises(ValueError, match="unknown grader"):
        g.grade("3", ask("colour"), 3)
