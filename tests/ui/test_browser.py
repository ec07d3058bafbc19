"""The workspace in a real browser: Debian's chromium driven by Playwright, against ``anomalygraph ui``
started as a user would. Upload a NAB CSV, ask the analyst (the scripted model: a tool step and a
plot), reload and resume the thread, diagnose and see the report, mark a false alarm and see the
rerun carry it, approve a generated rule bank, and upload a CSV whose header holds ``<script>``.

Screenshots go to ``out/screenshots/`` (or $ANOMALYGRAPH_SCREENSHOTS) for people to look at.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is installed by `make test` ([dev] extra)")
from playwright.sync_api import Page, expect, sync_playwright

from tests.ui.conftest import REPO

expect.set_options(timeout=30_000)  # CI runs this beside other tests on 2 cores: waits are generous, checks are exact
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make test` installs it)"),
]
NYC_TAXI = Path("NAB/data/realKnownCause/nyc_taxi.csv")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ANSWER = "The strongest anomaly detect found is in rows 10034..10137."
SNOWSTORM = {"tool_calls": [{"name": "AnomalyPriorDraft", "args": {
    "mechanism": "a snowstorm keeps people at home and passenger counts collapse",
    "morphology": "level_shift", "channels": ["value"], "direction": "down", "size": 4, "duration": "6-24 hours",
}}], "content": ""}
SCRIPT = [  # the chat turn (step-by-step planner), then the rule-bank run; diagnosis runs without the model
    {"tool_calls": [{"name": "NextAction", "args": {"action": "detect"}}], "content": ""},
    {"tool_calls": [{"name": "detect", "args": {"detector": "iforest"}}], "content": ""},
    {"tool_calls": [{"name": "NextAction", "args": {"action": "plot_series"}}], "content": ""},
    {"tool_calls": [{"name": "plot_series", "args": {"start": 9900, "end": 10300}}], "content": ""},
    ANSWER,
    {"tool_calls": [{"name": "FaultList", "args": {"faults": ["snowstorm"]}}], "content": ""},
    SNOWSTORM,
    SNOWSTORM,
]
SCENARIO = ("New York City taxi passenger counts, aggregated every 30 minutes. Operators know one kind of "
            "disruption: a snowstorm that keeps people at home, so demand collapses for most of a day.")


def shots() -> Path:
    folder = Path(os.environ.get("ANOMALYGRAPH_SCREENSHOTS") or REPO / "out" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def loaded_images(page: Page, selector: str) -> int:
    return page.eval_on_selector_all(selector, "els => els.filter(e => e.complete && e.naturalWidth > 0).length")


def test_workspace_in_a_real_browser(start_workspace, shared_data: Path, tmp_path: Path) -> None:
    ws = start_workspace(SCRIPT, "--planner", "steps", "--tools-per-turn", "2")
    upload = tmp_path / "nyc_taxi.csv"
    shutil.copy(shared_data / NYC_TAXI, upload)
    evil = tmp_path / "evil.csv"
    evil.write_text("timestamp,<script>alert('header')</script>\n" + "".join(
        f"2024-01-01 {h:02d}:00:00,{h % 5}\n" for h in range(24)))
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        # Files: upload the NAB CSV; it becomes the current file
        page.goto(ws.url + "/#files")
        page.set_input_files("#upload-file", str(upload))
        page.click("#upload")
        expect(page.locator("#upload-result")).to_contain_text("stored", timeout=60_000)
        stored = ws.out / "uploads" / "nyc_taxi.csv"
        assert stored.is_file() and stored.read_bytes() == upload.read_bytes()
        expect(page.locator("#current-file")).to_have_text(str(stored))
        expect(page.locator("#upload-result")).to_contain_text("10320 rows")

        # Chat: a tool step shown as it happens, then a plot inline, then the answer
        page.goto(ws.url + "/#chat")
        page.fill("#question", "Where is the strongest anomaly? Plot it.")
        page.click("#ask")
        expect(page.locator(".turn.finished")).to_have_count(1, timeout=120_000)
        steps = page.locator(".turn details.step summary")
        expect(steps).to_have_count(2)
        expect(steps.nth(0)).to_contain_text("detect(")
        expect(steps.nth(1)).to_contain_text("plot_series(")
        expect(page.locator(".turn .answer")).to_contain_text(ANSWER)
        page.wait_for_function("() => [...document.querySelectorAll('.turn img.plot')].some(i => i.complete && i.naturalWidth > 0)")
        page.locator(".turn details.step").nth(0).locator("summary").click()  # expand the detect result
        expect(page.locator(".turn details.step pre").nth(0)).to_contain_text("interval")
        page.screenshot(path=str(shots() / "chat.png"), full_page=True)
        thread = page.locator("#thread-id").inner_text()
        assert thread.startswith("chat-") and f"thread={thread}" in page.url

        # Reload: the thread resumes from the SQLite threads file with its steps and plot
        page.reload()
        expect(page.locator("#transcript .turn")).to_have_count(1, timeout=30_000)
        expect(page.locator("#transcript .turn .question")).to_contain_text("Where is the strongest anomaly?")
        expect(page.locator("#transcript details.step")).to_have_count(2)
        page.wait_for_function("() => [...document.querySelectorAll('#transcript img.plot')].some(i => i.complete && i.naturalWidth > 0)")
        expect(page.locator("#thread-list")).to_contain_text("Where is the strongest anomaly?")
        assert (ws.out / "chat" / "threads.sqlite").is_file()  # the file `anomalygraph chat` reads

        # Diagnose: per-node progress, then the report
        page.goto(ws.url + "/#diagnose")
        page.uncheck("#use-model")
        page.fill("#detectors", "iforest")
        page.click("#diagnose")
        expect(page.locator("#report table.intervals")).to_be_visible(timeout=180_000)
        for node in ("profile", "choose_detectors", "run_detector", "select", "explain", "report"):
            expect(page.locator(f"#progress li[data-node='{node}']")).to_have_count(1)
        expect(page.locator("#report h3")).to_contain_text("nyc_taxi")
        assert loaded_images(page, "#report .plots img") >= 1
        page.screenshot(path=str(shots() / "diagnosis_report.png"), full_page=True)

        # Feedback: mark the first flagged interval as a false alarm, rerun, the report carries it
        first = page.locator("#report tr.flagged").first
        start, end = first.get_attribute("data-start"), first.get_attribute("data-end")
        first.locator("button.mark[data-label='false']").click()
        expect(first.locator(".marks")).to_contain_text("false alarm")
        marks = [json.loads(line) for line in next((ws.out / "feedback").glob("*.jsonl")).read_text().splitlines()]
        assert [(m["start"], m["end"], m["label"], m["user"]) for m in marks] == [(int(start), int(end), "false", "tester")]
        page.click("#diagnose")
        expect(page.locator("#report .feedback")).to_contain_text("false alarm", timeout=180_000)
        row = page.locator(f"#report tr[data-start='{start}'][data-end='{end}']")
        expect(row.locator(".marks")).to_contain_text("false alarm (tester")
        expect(row.locator("td").nth(7)).to_have_text("no")  # no longer flagged
        page.screenshot(path=str(shots() / "feedback_rerun.png"), full_page=True)

        # Rule banks: generate from a scenario; the graph's interrupt is the approval screen
        page.goto(ws.url + "/#rulebanks")
        expect(page.locator("#bank-table tbody tr").first).to_be_visible()
        page.fill("#scenario", SCENARIO)
        page.fill("#bank-name", "nyc_taxi_mined")
        page.fill("#train-end", "5000")
        page.click("#generate")
        expect(page.locator("#approve")).to_be_visible(timeout=180_000)
        expect(page.locator("#approval")).to_contain_text("snowstorm")
        page.wait_for_function("() => [...document.querySelectorAll('#approval img.plot')].some(i => i.complete && i.naturalWidth > 0)")
        page.screenshot(path=str(shots() / "rulebank_approval.png"), full_page=True)
        assert not (ws.out / "ui" / "rulebanks" / "nyc_taxi_mined.yaml").exists()  # nothing before approval
        page.click("#approve")
        expect(page.locator("#approval")).to_contain_text("stored bank 'nyc_taxi_mined'", timeout=60_000)
        assert (ws.out / "ui" / "rulebanks" / "nyc_taxi_mined.yaml").is_file()

        # A header holding <script> is shown as text, never run
        page.goto(ws.url + "/#files")
        page.set_input_files("#upload-file", str(evil))
        page.click("#upload")
        expect(page.locator("#upload-result .columns")).to_have_text("<script>alert('header')</script>", timeout=30_000)
        assert page.eval_on_selector_all("script", "els => els.map(e => e.getAttribute('src'))") == ["/static/app.js"]
        page.screenshot(path=str(shots() / "script_header.png"), full_page=True)
        browser.close()
    assert dialogs == [], f"a script ran in the page: {dialogs}"


@pytest.mark.llm
def test_the_analyst_answers_in_the_page_with_the_embedded_model(start_workspace, shared_data: Path) -> None:
    """The default model, not a script: the page shows the tool step it ran and the model's streamed answer."""
    from tests.llm.conftest import embedded_skip_reason

    reason = embedded_skip_reason()
    if reason:
        pytest.skip(reason)
    ws = start_workspace(None, env={"ANOMALYGRAPH_LLM_PROVIDER": "embedded"})
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(ws.url + "/#files")
        page.fill("#file-filter", "nyc_taxi")
        page.locator(f"#file-table tr[data-path$='{NYC_TAXI.name}'] button.use").first.click()
        expect(page.locator("#current-file")).to_contain_text("nyc_taxi.csv")
        page.goto(ws.url + "/#chat")
        page.fill("#question", "How many rows does this file have, and how often is it sampled?")
        page.click("#ask")
        expect(page.locator(".turn.finished")).to_have_count(1, timeout=300_000)
        expect(page.locator(".turn details.step summary").first).to_contain_text("profile_series(")
        expect(page.locator(".turn .answer")).not_to_be_empty()
        assert "10320" in page.locator(".turn").inner_text()  # the tool's fact reached the page
        page.screenshot(path=str(shots() / "chat_embedded.png"), full_page=True)
        browser.close()
