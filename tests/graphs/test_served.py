"""Every graph of ``langgraph.json`` under the LangGraph API server (``langgraph dev``, in memory).

The server is started from the repository's ``langgraph.json`` on 127.0.0.1 and a free port,
offline (no LangSmith tracing, no CLI analytics, no version check), with the scripted chat model
chosen by settings (``ANOMALYGRAPH_LLM_PROVIDER=scripted``). Each graph runs once through
``langgraph_sdk`` on a real series from the shared data with no context passed, as a Studio or
SDK client would run it. Every server runs in its own process group, killed when its test ends
and, at the latest, by the module fixture's teardown, whatever happened.

The ``llm`` test runs the diagnosis graph once more under a server of its own with the real
embedded model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anomalygraph.llm.embedded import free_port
from tests.conftest import REPO
from tests.llm.conftest import embedded_skip_reason

pytestmark = pytest.mark.integration

LANGGRAPH = Path(sys.executable).with_name("langgraph")  # the CLI installed beside this interpreter
CONFIG = REPO / "langgraph.json"
STARTUP_TIMEOUT_S = 180.0  # measured 2-4 s on 2 busy cores; the margin is for a cold disk cache
RUN_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 15.0

NYC_TAXI = "NAB/data/realKnownCause/nyc_taxi.csv"

# What keeps the server and its CLI offline (langgraph-api 0.16, langgraph-cli 0.4): LangSmith
# tracing off (it also decides whether the Studio URL is looked up), no CLI analytics post, no
# PyPI version check, no OpenTelemetry export. The metadata loop only runs with a license or
# control-plane key, which are removed with every other key below.
OFFLINE_ENV = {
    "LANGSMITH_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGCHAIN_TRACING": "false",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "OTEL_ENABLED": "false",
    "LANGGRAPH_METRICS_ENABLED": "false",
    "PYTHONUNBUFFERED": "1",
}
DROPPED_ENV = (
    "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGGRAPH_API_KEY", "LANGSMITH_CONTROL_PLANE_API_KEY",
    "LANGGRAPH_CLOUD_LICENSE_KEY", "LANGSMITH_ENDPOINT", "LANGCHAIN_ENDPOINT", "LANGSMITH_AUTH_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "LANGGRAPH_API_URL",
)


def configured_graphs() -> dict[str, str]:
    return json.loads(CONFIG.read_text())["graphs"]


def server_config(folder: Path) -> Path:
    """The repository's ``langgraph.json`` with its paths made absolute, written into ``folder``.

    The server runs in ``folder`` so that its dev persistence (``.langgraph_api/``) lands there,
    not in the checkout, and two test processes never share it.
    """
    config = json.loads(CONFIG.read_text())
    config["dependencies"] = [str((REPO / dep).resolve()) if dep.startswith(".") else dep for dep in config["dependencies"]]
    graphs = {}
    for name, spec in config["graphs"].items():
        where, variable = spec.rsplit(":", 1)
        graphs[name] = f"{(REPO / where).resolve()}:{variable}" if "/" in where else spec  # a file, or a module
    config["graphs"] = graphs
    path = folder / "langgraph.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def server_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without keys, endpoints or the developer's ANOMALYGRAPH_* settings."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV and not k.startswith("ANOMALYGRAPH_")}
    return {**env, **OFFLINE_ENV, **extra}


@dataclass
class Served:
    """A running ``langgraph dev`` server."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    started_in_s: float = 0.0

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def client(self):
        import httpx
        from langgraph_sdk import get_sync_client

        return get_sync_client(url=self.url, api_key=None, timeout=httpx.Timeout(RUN_TIMEOUT_S, connect=10.0))

    def run(self, graph: str, inputs: dict[str, Any] | None = None, **kw: Any) -> tuple[str, dict[str, Any]]:
        """One run of ``graph`` on a new thread (or ``thread_id=``), no context; (thread id, final values)."""
        client = self.client()
        thread_id = kw.pop("thread_id", None) or client.threads.create()["thread_id"]
        out = client.runs.wait(thread_id, graph, input=inputs, raise_error=False, **kw)
        assert isinstance(out, dict), f"{graph}: unexpected answer {out!r}\nserver log:\n{self.log_tail()}"
        if "__error__" in out:
            raise AssertionError(f"{graph} failed under the server: {out['__error__']}\nserver log:\n{self.log_tail()}")
        return thread_id, out


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (uvicorn and anything it started), SIGKILL if it lingers."""
    if process.poll() is not None and not _group_alive(process.pid):
        return
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None and not _group_alive(process.pid):
                return
            time.sleep(0.1)
    process.wait(5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ready(url: str, graphs: set[str]) -> bool:
    import httpx

    try:
        if httpx.get(f"{url}/ok", timeout=2.0).status_code != 200:
            return False
        found = httpx.post(f"{url}/assistants/search", json={"limit": 100}, timeout=5.0)
    except httpx.HTTPError:
        return False
    return found.status_code == 200 and graphs <= {a["graph_id"] for a in found.json()}


def start_server(folder: Path, env: Mapping[str, str], *, attempts: int = 3) -> Served:
    """``langgraph dev`` on 127.0.0.1 and a free port, ready when ``/ok`` answers and every graph is listed."""
    if not LANGGRAPH.exists():
        pytest.fail(f"{LANGGRAPH} is missing: pip install -e '.[dev]' (langgraph-cli[inmem])")
    folder.mkdir(parents=True, exist_ok=True)
    config = server_config(folder)
    graphs = set(configured_graphs())
    for attempt in range(1, attempts + 1):
        port = free_port()
        log = folder / f"server-{port}.log"
        started = time.monotonic()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port),
                 "--config", str(config)],
                cwd=folder, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches every child
            )
        served = Served(url=f"http://127.0.0.1:{port}", process=process, log=log)
        try:
            while not _ready(served.url, graphs):
                if process.poll() is not None:
                    break
                if time.monotonic() - started > STARTUP_TIMEOUT_S:
                    pytest.fail(f"langgraph dev was not ready within {STARTUP_TIMEOUT_S:g} s; log:\n{served.log_tail()}")
                time.sleep(0.25)
        except BaseException:
            stop(process)
            raise
        if process.poll() is None:
            served.started_in_s = round(time.monotonic() - started, 2)
            return served
        stop(process)
        if "address already in use" not in served.log_tail().lower() or attempt == attempts:
            pytest.fail(f"langgraph dev exited with code {process.returncode}; log:\n{served.log_tail()}")
    raise AssertionError("unreachable")


class Launcher:
    """Starts one server per scripted graph run and owns their shutdown.

    The server builds the chat model the settings name once per process (``llm.factory.chat_model``
    caches it by configuration), so a scripted model's place in its script carries over from one
    run to the next: each graph gets a server, and so a script, of its own.
    """

    def __init__(self, folder: Path, shared_data: Path) -> None:
        self.folder = folder
        self.shared_data = shared_data
        self.started: list[Served] = []

    def env(self, folder: Path, *, own_cache: bool = True, **extra: str) -> dict[str, str]:
        """Data roots, output and cache folders for a server in ``folder``; ``own_cache=False``
        keeps the user's cache, where the embedded model is assembled."""
        env = {
            "ANOMALYGRAPH_DATA_ROOTS": json.dumps([str(self.shared_data)]),
            "ANOMALYGRAPH_OUTPUT_DIR": str(folder / "out"),
        }
        if own_cache:
            env["ANOMALYGRAPH_CACHE_DIR"] = str(folder / "cache")
        elif os.environ.get("ANOMALYGRAPH_CACHE_DIR"):
            env["ANOMALYGRAPH_CACHE_DIR"] = os.environ["ANOMALYGRAPH_CACHE_DIR"]
        return server_env({**env, **extra})

    @contextmanager
    def scripted(self, name: str, script: list[Any]) -> Iterator[Served]:
        """A server whose chat model is the scripted one, answering ``script`` (stopped on exit)."""
        folder = self.folder / name
        folder.mkdir(parents=True)
        script_file = folder / "script.json"
        script_file.write_text(json.dumps(script, indent=2))
        env = self.env(folder, ANOMALYGRAPH_LLM_PROVIDER="scripted", ANOMALYGRAPH_LLM_SCRIPT_FILE=str(script_file))
        with self.serving(folder, env) as served:
            yield served

    @contextmanager
    def serving(self, folder: Path, env: Mapping[str, str]) -> Iterator[Served]:
        served = start_server(folder, env)
        self.started.append(served)
        try:
            yield served
        finally:
            stop(served.process)

    def stop_all(self) -> None:
        for served in self.started:
            stop(served.process)
        alive = [s.process.pid for s in self.started if _group_alive(s.process.pid)]
        assert not alive, f"server process groups {alive} outlived the tests"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path_factory.mktemp("served"), shared_data)
    try:
        yield launcher
    finally:
        launcher.stop_all()


# -------------------------------------------------------------------- the server
def test_the_server_lists_every_graph_of_langgraph_json(servers: Launcher) -> None:
    with servers.scripted("listing", ["unused"]) as served:
        assistants = served.client().assistants.search(limit=100)
        assert {a["graph_id"] for a in assistants} == set(configured_graphs()) == {"diagnosis", "rulebank_generation", "analyst", "ape_post_training"}
        assert served.started_in_s < STARTUP_TIMEOUT_S
    assert not _group_alive(served.process.pid)


# -------------------------------------------------------------------- diagnosis
EXPLANATION = "The fused detectors flag a short departure from the usual daily pattern in this window."
DIAGNOSIS_SCRIPT = [EXPLANATION]  # every explanation asked for gets this sentence (the last reply repeats)


def check_verdict(verdict: dict[str, Any], out: Path) -> None:
    """What any diagnosis of nyc_taxi with iforest alone must hold, whatever the model said."""
    assert verdict["series"] == "nyc_taxi" and verdict["length"] == 10320
    assert verdict["plan"]["source"] == "user" and verdict["plan"]["detectors"] == ["iforest"]
    (record,) = verdict["detectors"]
    assert record["detector"] == "iforest" and record["status"] == "ok" and record["intervals"]
    intervals = verdict["selection"]["intervals"]
    assert intervals and all(0 <= iv["start"] <= iv["end"] < 10320 for iv in intervals)
    report = Path(verdict["report_path"])
    assert report.is_file() and report.parent == out and "nyc_taxi" in report.read_text()
    assert verdict["plots"] and all(Path(p).is_file() for p in verdict["plots"])
    assert verdict["explanations"]


def diagnosis_inputs(shared_data: Path, out: Path) -> dict[str, Any]:
    return {"path": str(shared_data / NYC_TAXI), "out_dir": str(out), "requested": ["iforest"], "notes": []}


def test_diagnosis_runs_under_the_server_without_a_context(servers: Launcher, shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "diagnosis"
    with servers.scripted("diagnosis", DIAGNOSIS_SCRIPT) as served:
        _, final = served.run("diagnosis", diagnosis_inputs(shared_data, out))
    verdict = final["verdict"]
    check_verdict(verdict, out)
    # the explanations came from the chat model the settings name, made at run time in the server
    assert all(e["source"] == "llm" and e["text"] == EXPLANATION for e in verdict["explanations"]), verdict["notes"]
    assert verdict["model"]


# ------------------------------------------------------------------------ analyst
ANALYST_ANSWER = "The file holds the New York taxi passenger counts, one value every half hour."
ANALYST_QUESTION = "What is in this file, and how many rows does it have?"
ANALYST_SCRIPT: list[Any] = [  # the default planner: the wording asks for facts, so profile_series runs; then the answer
    ANALYST_ANSWER,
]


def test_analyst_calls_a_tool_and_answers_under_the_server(servers: Launcher, shared_data: Path) -> None:
    series = shared_data / NYC_TAXI
    with servers.scripted("analyst", ANALYST_SCRIPT) as served:
        _, final = served.run("analyst", {"messages": [{"role": "user", "content": ANALYST_QUESTION}], "file": str(series)})
    messages = final["messages"]
    tool_messages = [m for m in messages if m["type"] == "tool"]
    assert [m["name"] for m in tool_messages] == ["profile_series"], messages
    (result,) = tool_messages
    assert result["status"] == "success" and "10320" in result["content"], result["content"]
    assert messages[0]["type"] == "human" and messages[0]["content"] == ANALYST_QUESTION
    assert messages[-1]["type"] == "ai" and messages[-1]["content"] == ANALYST_ANSWER
    assert final.get("notes") == ["a 'facts' question (its wording asks for this): running profile_series"], final.get("notes")


# ----------------------------------------------------------- rule-bank generation
SCENARIO = (
    "New York City taxi passenger counts, aggregated every 30 minutes. Operators know one kind of "
    "disruption: a snowstorm that keeps people at home, so demand collapses for most of a day."
)
TRAIN_END = 5000  # the first labelled anomaly window of nyc_taxi opens after row 5,800
SNOWSTORM = {"tool_calls": [{"name": "AnomalyPriorDraft", "args": {
    "mechanism": "a snowstorm keeps people at home and passenger counts collapse",
    "morphology": "level_shift", "channels": ["value"], "direction": "down", "size": 4, "duration": "6-24 hours",
}}], "content": ""}
RULEBANK_SCRIPT: list[Any] = [
    {"tool_calls": [{"name": "FaultList", "args": {"faults": ["snowstorm"]}}], "content": ""},
    SNOWSTORM,
    SNOWSTORM,  # the measured critic sends it back once: shifted down it drives night-time counts below zero
]
APPROVAL = {"action": "approve", "drop": [], "note": "looks right", "by": "human"}


def rulebank_inputs(shared_data: Path, tmp_path: Path) -> dict[str, Any]:
    return {
        "scenario": SCENARIO, "series_path": str(shared_data / NYC_TAXI), "train_end": TRAIN_END,
        "out_path": str(tmp_path / "nyc_taxi_mined.yaml"), "work_dir": str(tmp_path / "work"), "bank_name": None,
        "notes": [], "dropped": [], "trace": [], "plots": [],
    }


def test_rulebank_generation_stops_for_approval_and_stores_the_bank_under_the_server(
    servers: Launcher, shared_data: Path, tmp_path: Path
) -> None:
    from anomalygraph.rulebank.store import load_bank

    bank_file = tmp_path / "nyc_taxi_mined.yaml"
    with servers.scripted("rulebank_generation", RULEBANK_SCRIPT) as served:
        thread_id, first = served.run("rulebank_generation", rulebank_inputs(shared_data, tmp_path))
        state = served.client().threads.get_state(thread_id)
        assert state["next"] == ["approve"], (state["next"], first.get("notes"), first.get("dropped"))
        (interrupt,) = [i for task in state["tasks"] for i in task["interrupts"]]
        request = interrupt["value"]
        assert request["bank"] == "nyc_taxi_mined" and [r["id"] for r in request["rules"]] == ["snowstorm"]
        assert request["rules"][0]["morphology"] == "level_shift"
        assert request["plots"] and all(Path(p).is_file() for p in request["plots"])
        assert not bank_file.exists()  # nothing is stored before a person approves
        # the client answers the interrupt, as Studio's resume button does
        _, final = served.run("rulebank_generation", thread_id=thread_id, command={"resume": APPROVAL})
    result = final["result"]
    assert result["status"] == "stored" and result["bank_path"] == str(bank_file), result
    assert result["model_steps"] == 3 and result["decision"]["action"] == "approve"
    (kept,) = result["rules"]
    assert "never negative" in kept["critique"] and "budget (1) is spent" in kept["critique"]
    bank = load_bank(bank_file)  # validates on load
    assert bank.rule_ids == ["snowstorm"] and bank.rules[0].morphology == "level_shift"
    assert bank.origin.made_by == "llm"


# --------------------------------------------------------------- APE post-training
def test_ape_post_training_runs_under_the_server_without_a_context(servers: Launcher, shared_data: Path, tmp_path: Path) -> None:
    """TranAD on a real SMAP channel, post-trained with the CutAddPaste bank, in the server's process."""
    from anomalygraph.rulebank.store import bank_sha256, load_bank

    request = {"series_path": str(shared_data / "SMAP_MSL/test/T-2.npy"), "out_dir": str(tmp_path / "ape"), "backbone": "tranad",
               "bank": "cutaddpaste", "fit": {"epochs": 1, "max_train_windows": 500},
               "ape": {"epochs": 1, "steps_per_epoch": 4, "batch_size": 16, "validation_batches": 1}}
    with servers.scripted("ape", ["unused"]) as served:
        _, final = served.run("ape_post_training", {"request": request})
    verdict = final["verdict"]
    assert verdict["backbone"] == "tranad" and verdict["bank"]["sha256"] == bank_sha256(load_bank("cutaddpaste"))
    assert (Path(verdict["artifact"]) / "ape.json").is_file() and Path(verdict["plot"]).is_file()
    assert verdict["before"] is not None and verdict["delta_vus_pr"] == verdict["after"]["vus_pr"] - verdict["before"]["vus_pr"]
    assert set(final["timings"]) == {"bank", "sample", "fit", "post_train", "report"}


# ------------------------------------------------------------- the embedded model


@pytest.mark.llm
def test_diagnosis_runs_under_the_server_with_the_embedded_model(servers: Launcher, shared_data: Path, tmp_path: Path) -> None:
    reason = embedded_skip_reason()
    if reason:
        pytest.skip(reason)
    folder = servers.folder / "embedded"
    folder.mkdir()
    env = servers.env(folder, own_cache=False, ANOMALYGRAPH_LLM_PROVIDER="embedded")
    out = tmp_path / "diagnosis"
    with servers.serving(folder, env) as served:
        # the server's first model call starts llama.cpp's server as its child (same process group)
        _, final = served.run("diagnosis", diagnosis_inputs(shared_data, out))
    assert not _group_alive(served.process.pid), "the embedded model's server outlived langgraph dev"
    verdict = final["verdict"]
    unreachable = [n for n in verdict["notes"] if "cannot reach the LLM server" in n]
    assert not unreachable, f"the embedded model failed under langgraph dev: {unreachable[0]}"
    check_verdict(verdict, out)
    assert verdict["model"] and "qwen" in verdict["model"].lower(), verdict["model"]
    for explanation in verdict["explanations"]:
        if explanation["source"] == "statistics":  # the model answered, but not usably: said so in the notes
            assert any("fell back to statistics: the model's answer" in n for n in verdict["notes"]), verdict["notes"]
