"""``anomalygraph chat`` driven non-interactively with scripted models: transcript rendering, plots,
streaming, stdin questions, the step budget, and resuming a thread in a later invocation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk
from typer.testing import CliRunner

from anomalygraph.cli import chat as chat_cli
from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.llm.scripted import ScriptedChatModel, tool_call


def step(action: str):
    return tool_call("NextAction", {"action": action})


class StreamingScripted(ScriptedChatModel):
    """Streams like the embedded llama.cpp server: text word by word, and tool calls in chunks that
    each repeat the function name (merged, they read ``NextActionNextAction``), so a forced call
    only survives when it is not streamed."""

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        result = self._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        message = result.generations[0].message
        if message.tool_calls:
            for c in message.tool_calls:
                args = json.dumps(c["args"])
                for part in (args[: len(args) // 2], args[len(args) // 2 :]):
                    yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[
                        {"name": c["name"], "args": part, "id": c["id"], "index": 0, "type": "tool_call_chunk"}
                    ]))
            return
        for word in str(message.content).split(" "):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


@pytest.fixture
def app():
    cli = typer.Typer()
    cli.command()(chat_cli.chat)

    @cli.callback()
    def main() -> None:
        """Test shell."""

    return cli


@pytest.fixture
def series_file(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(1200)
    cpu = 40 + 5 * np.sin(2 * np.pi * t / 60) + rng.normal(size=t.size)
    cpu[900:905] += 50
    path = tmp_path / "data" / "cpu.csv"
    path.parent.mkdir()
    pd.DataFrame({"timestamp": pd.date_range("2024-05-01", periods=t.size, freq="5min"), "cpu": cpu}).to_csv(path, index=False)
    return path


@pytest.fixture
def use_model(monkeypatch):
    """Install a scripted model for the next invocation(s); returns it."""

    def install(script, cls=ScriptedChatModel):
        model = cls(script=list(script))
        monkeypatch.setattr(chat_cli, "make_model", lambda config: model)
        return model

    return install


@pytest.fixture(autouse=True)
def _roots(monkeypatch, tmp_path):
    monkeypatch.setenv("ANOMALYGRAPH_DATA_ROOTS", f'["{tmp_path / "data"}"]')


def invoke(app, args, **kw):
    """The chat command with the step-by-step planner, whose model calls these scripts follow."""
    result = CliRunner().invoke(app, ["chat", "--planner", "steps", *args], **kw)
    return result


def test_message_turn_shows_tools_plot_and_answer(app, series_file, tmp_path, use_model):
    use_model([
        step("detect"), tool_call("detect", {"detector": "robust_z"}),
        step("plot_series"), tool_call("plot_series", {"start": 850, "end": 950}),
        "The spike is at rows 900..904.",
    ])
    out = tmp_path / "out"
    result = invoke(app, ["--thread", "t1", "--out", str(out), "--tools-per-turn", "2", str(series_file), "-m", "Where is the spike?"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "thread t1 (new)" in text and "you: Where is the spike?" in text
    assert "→ detect(" in text and "✓ detect" in text and "✓ plot_series" in text
    plot = out / "plots" / "cpu_850_950.png"
    assert f"plot saved: {plot}" in text and plot.read_bytes()[:4] == b"\x89PNG"
    assert "analyst:" in text and "The spike is at rows 900..904." in text
    assert "2 tool call(s), 2 ok" in text and "5 model call(s)" in text
    sources = " ".join(text.split()).split("sources: ")[1]
    assert sources.startswith("detect(") and "detector=robust_z); plot_series(" in sources and "start=850, end=950)" in sources
    assert (out / "threads.sqlite").exists()


def test_thread_resumes_after_restart_with_its_file_and_history(app, series_file, tmp_path, use_model):
    out = tmp_path / "out"
    use_model([step("load_series"), "1200 rows of cpu."])
    first = invoke(app, ["-t", "t1", "--out", str(out), str(series_file), "-m", "How long is it?"])
    assert first.exit_code == 0, first.output
    model = use_model([step("profile_series"), "Still 1200 rows, one channel."])
    second = invoke(app, ["-t", "t1", "--out", str(out), "--history", "-m", "What did you find?"])
    assert second.exit_code == 0, second.output
    assert "thread t1 resumed: 1 earlier turn(s)" in second.output and str(series_file) in second.output
    assert "you: How long is it?" in second.output and "tools: load_series" in second.output  # --history
    assert "Still 1200 rows" in second.output
    seen = model.calls[0]
    assert any(isinstance(m, HumanMessage) and "The user asked: How long is it?" in m.content for m in seen)
    assert str(series_file) in seen[0].content


def test_questions_from_stdin_and_streamed_tokens(app, series_file, tmp_path, use_model, monkeypatch):
    tokens = []
    real_token = chat_cli.TurnView.token
    monkeypatch.setattr(chat_cli.TurnView, "token", lambda self, text: tokens.append(text) or real_token(self, text))
    use_model([
        step("load_series"), "It has 1200 rows.",
        step("explain_window"), tool_call("explain_window", {"start": 100, "end": 110}),
        "It is sampled every 5 minutes.",
    ], cls=StreamingScripted)
    result = invoke(app, ["--out", str(tmp_path / "out"), str(series_file)], input="How long?\n# a comment\n\nHow often sampled?\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("you: ") == 2
    assert "✓ explain_window" in result.output  # forced calls are not streamed, so they arrive whole
    assert "It has 1200 rows." in result.output and "sampled every 5 minutes." in result.output
    assert result.output.count("It has 1200 rows.") == 1  # streamed once, not printed again
    assert tokens[:4] == ["It ", "has ", "1200 ", "rows. "]  # only the answer's tokens, as they came


def test_budget_note_is_shown(app, series_file, tmp_path, use_model):
    use_model([
        step("detect"), tool_call("detect", {"detector": "robust_z"}),
        "Only one detector ran.",
    ])
    result = invoke(app, ["--out", str(tmp_path / "out"), "--max-steps", "1", str(series_file), "-m", "Run all detectors"])
    assert result.exit_code == 0, result.output
    assert "note: the step budget of 1 tool calls" in result.output


def test_tool_error_is_shown_and_the_turn_goes_on(app, series_file, tmp_path, use_model):
    use_model([
        step("explain_window"), tool_call("explain_window", {"start": 9000, "end": 9010}),
        step("explain_window"), tool_call("explain_window", {"start": 1100, "end": 1110}),
        "Rows 9000..9010 do not exist; rows 1100..1110 are normal.",
    ])
    result = invoke(app, ["--out", str(tmp_path / "out"), str(series_file), "-m", "Explain rows 9000..9010"])
    assert result.exit_code == 0, result.output
    assert "✗ explain_window (tool error)" in result.output and "outside series" in result.output
    assert "✓ explain_window" in result.output and "rows 1100..1110 are normal" in result.output


def test_list_threads(app, series_file, tmp_path, use_model):
    out = tmp_path / "out"
    for tid in ("alpha", "beta"):
        use_model([step("answer"), "hi"])
        assert invoke(app, ["-t", tid, "--out", str(out), "-m", "hello"]).exit_code == 0
    listed = invoke(app, ["--out", str(out), "--list"])
    assert set(listed.output.split()) == {"alpha", "beta"}


def test_bad_inputs_raise_user_errors(app, tmp_path, use_model):
    use_model([])
    missing = invoke(app, ["--out", str(tmp_path / "out"), str(tmp_path / "nope.csv"), "-m", "hi"])
    assert isinstance(missing.exception, DataError) and "no such file" in str(missing.exception)
    bad = invoke(app, ["--thread", "a b/c", "--out", str(tmp_path / "out"), "-m", "hi"])
    assert isinstance(bad.exception, ConfigError) and "--thread" in str(bad.exception)


def test_file_outside_the_roots_is_allowed_once_named(app, tmp_path, use_model, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = elsewhere / "m.csv"
    pd.DataFrame({"value": np.arange(200.0)}).to_csv(path, index=False)
    use_model([step("load_series"), "200 rows."])
    result = invoke(app, ["--out", str(tmp_path / "out"), str(path), "-m", "How long?"])
    assert result.exit_code == 0, result.output
    assert "✓ load_series" in result.output


def test_help_has_an_example(app):
    result = CliRunner().invoke(app, ["chat", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--thread" in result.output
