from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from langchain_core.messages import HumanMessage

from anomalygraph.core.errors import DataError
from anomalygraph.core.llm_settings import CAPABILITY_PRESETS, Provider
from anomalygraph.data.series import TimeSeries
from anomalygraph.llm.messages import TEXT_RENDERING_INTRO, has_image, plot_message, read_png
from anomalygraph.llm.structured import structured
from tests.llm.fakes import ScriptedChatModel, call

VISION = CAPABILITY_PRESETS[Provider.vllm]
TEXT_ONLY = CAPABILITY_PRESETS[Provider.embedded]


@pytest.fixture
def series() -> TimeSeries:
    rng = np.random.default_rng(3)
    x = np.sin(np.arange(600) * 2 * np.pi / 24) + rng.normal(0, 0.1, 600)
    x[400] += 8.0
    return TimeSeries(values=x, timestamps=pd.date_range("2024-01-01", periods=600, freq="h"), name="cpu")


@pytest.fixture
def png(series: TimeSeries) -> bytes:
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.plot(series.values[:, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def test_vision_model_gets_the_image(png: bytes, series: TimeSeries) -> None:
    msg = plot_message("Is there an anomaly?", capabilities=VISION, image=png, series=series)
    assert has_image(msg)
    text_part, image_part = msg.content
    assert text_part == {"type": "text", "text": "Is there an anomaly?"}
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png  # the very bytes, not a copy of something else


def test_text_only_model_gets_a_rendering_instead_of_the_image(png: bytes, series: TimeSeries) -> None:
    msg = plot_message("Is there an anomaly?", capabilities=TEXT_ONLY, image=png, series=series, intervals=[(398, 402)])
    assert not has_image(msg)
    assert isinstance(msg.content, str)  # llama.cpp chat formats need plain strings
    text = msg.content
    assert text.startswith("Is there an anomaly?") and TEXT_RENDERING_INTRO in text
    assert "base64" not in text
    peak = series.values[400, 0]
    assert f"max {peak:.4g} at t=400 (2024-01-17 16:00:00)" in text  # the spike: its value and when
    assert "level shifts: none detected" in text  # a spike is not a shift
    assert "periods: 24 steps" in text  # the daily cycle of hourly data
    assert "mark " in text and "^" in text  # the highlighted interval


def test_text_only_model_without_data_is_an_error_not_a_silent_drop(png: bytes) -> None:
    with pytest.raises(DataError, match="no vision"):
        plot_message("look", capabilities=TEXT_ONLY, image=png)


def test_no_plot_is_just_text() -> None:
    msg = plot_message("hello", capabilities=TEXT_ONLY)
    assert msg.content == "hello"


def test_bad_images_are_rejected(tmp_path: Path, series: TimeSeries) -> None:
    with pytest.raises(DataError, match="not a PNG"):
        plot_message("x", capabilities=VISION, image=b"GIF89a....", series=series)
    with pytest.raises(DataError, match="does not exist"):
        read_png(tmp_path / "missing.png")
    with pytest.raises(DataError, match="not a PNG"):  # checked for text-only models too
        plot_message("x", capabilities=TEXT_ONLY, image=b"nope", series=series)


def test_image_from_path(tmp_path: Path, png: bytes) -> None:
    path = tmp_path / "plot.png"
    path.write_bytes(png)
    assert read_png(path) == png


def test_same_agent_step_runs_on_both_kinds_of_model(png: bytes, series: TimeSeries) -> None:
    """One function builds the message from the model's capabilities; both models get a valid request."""
    from pydantic import BaseModel

    class Verdict(BaseModel):
        anomalous: bool

    for caps in (VISION, TEXT_ONLY):
        model = ScriptedChatModel(
            script=[call("Verdict", {"anomalous": True})],
            metadata={"anomalygraph_capabilities": {**caps.model_dump(), "json_schema": False}},
        )
        msg = plot_message("Anomalous?", capabilities=caps, image=png, series=series)
        assert structured(model, Verdict, [msg]).anomalous is True
        sent = next(m for m in model.requests[0]["messages"] if isinstance(m, HumanMessage))
        assert has_image(sent) is caps.vision
