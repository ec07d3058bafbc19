"""A user message about a plot that any model can read: the image for a vision model, words for
the rest, so one agent runs unchanged on Qwen3-VL and on the embedded text-only model.

Which one is sent follows the model's declared capabilities (``capabilities.vision``), never a
guess from its name. Text-only content is a plain string, because llama.cpp's chat formats
render list content literally.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from langchain_core.messages import BaseMessage, HumanMessage

from anomalygraph.core.errors import DataError
from anomalygraph.core.intervals import Interval
from anomalygraph.core.llm_settings import ModelCapabilities
from anomalygraph.data.series import TimeSeries
from anomalygraph.llm.rendering import render_series
from anomalygraph.prompts import load_prompt

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE_BYTES = 8 << 20
PROMPT_TEXT_RENDERING = "llm/plot_as_text"
TEXT_RENDERING_INTRO = load_prompt(PROMPT_TEXT_RENDERING).render()
"""What a text-only model is told before the rendering of a plot it cannot see."""


def text_of(message: BaseMessage) -> str:
    """The text of a message whose content is a string or a list of parts (images contribute nothing)."""
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)


def new_call_id() -> str:
    """An id for a tool call the agent makes or repairs itself (OpenAI-style ``call_...``)."""
    return f"call_{uuid.uuid4().hex[:12]}"


def read_png(image: bytes | str | Path) -> bytes:
    """PNG bytes from bytes or a file path; anything else is a :class:`DataError`."""
    if isinstance(image, bytes):
        data, where = image, "image bytes"
    else:
        path = Path(image)
        if not path.is_file():
            raise DataError(f"plot file {path} does not exist")
        data, where = path.read_bytes(), str(path)
    if not data.startswith(PNG_MAGIC):
        raise DataError(f"{where} is not a PNG image (wrong file signature)")
    if len(data) > MAX_IMAGE_BYTES:
        raise DataError(f"{where} is {len(data) / 1e6:.1f} MB; plots sent to a model must stay under {MAX_IMAGE_BYTES >> 20} MB")
    return data


def image_part(png: bytes) -> dict[str, object]:
    """An OpenAI ``image_url`` content part holding the PNG as a base64 data URL."""
    encoded = base64.b64encode(png).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}}


def plot_message(
    text: str,
    *,
    capabilities: ModelCapabilities,
    image: bytes | str | Path | None = None,
    series: TimeSeries | np.ndarray | None = None,
    intervals: Sequence[Interval | tuple[int, int]] | None = None,
) -> HumanMessage:
    """``text`` plus the plot: as an image part for a vision model, else as a textual rendering.

    A vision model gets the image when there is one (and the rendering when there is only the
    data). A text-only model always gets the rendering of ``series``, so ``series`` is required
    for it; ``intervals`` (e.g. detected anomalies) are marked in the rendering.
    """
    if capabilities.vision and image is not None:
        return HumanMessage(content=[{"type": "text", "text": text}, image_part(read_png(image))])
    if series is None:
        if image is None:
            return HumanMessage(content=text)
        raise DataError(
            "this model has no vision (capabilities.vision is false), so the plot must be described in text, "
            "but no series was given to render; pass series= with the plotted data"
        )
    if image is not None:
        read_png(image)  # a bad file is an error whichever model reads the message
    rendering = render_series(series, intervals=intervals)
    return HumanMessage(content=f"{text}\n\n{TEXT_RENDERING_INTRO}\n{rendering}")


def has_image(message: HumanMessage) -> bool:
    """Whether ``message`` carries an image part."""
    content = message.content
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") in ("image_url", "image") for part in content
    )
