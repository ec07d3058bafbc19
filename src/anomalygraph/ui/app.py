"""The FastAPI app: one page and a JSON / NDJSON API over the chat, files, diagnosis, rule banks and feedback.

Security, in one place: the app answers only requests whose Host is the address it was started
on (a DNS-rebinding page cannot reach it) and refuses state-changing requests from another
Origin (a page elsewhere cannot post to it); every path from the browser goes through
:mod:`anomalygraph.ui.paths`; the page's Content-Security-Policy allows scripts from the app
only, and the page renders data with ``textContent`` (model answers and reports as Markdown
with raw HTML escaped).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field

from anomalygraph.core.errors import AnomalyGraphError, ConfigError, DataError
from anomalygraph.core.settings import Settings
from anomalygraph.data.feedback import FeedbackStore, make_mark
from anomalygraph.data.loaders import load_series
from anomalygraph.graphs.analyst.graph import check_thread_id, new_thread_id
from anomalygraph.graphs.rulebank_generation import ApprovalDecision
from anomalygraph.ui.chat import ChatService
from anomalygraph.ui.files import list_files, save_upload, summarize
from anomalygraph.ui.jobs import DiagnosisJobs, RuleBankJobs
from anomalygraph.ui.paths import ARTIFACT_SUFFIXES, artifact_path, data_path, safe_name
from anomalygraph.ui.render import markdown_html

PACKAGE = files("anomalygraph.ui")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
READ_CHUNK = 1 << 20


@dataclass
class UIConfig:
    """What one app serves: the roots it reads, where it writes, and how the analyst runs."""

    data_roots: list[Path]
    out_dir: Path
    """The settings' output folder: chat threads (``chat/``) and feedback (``feedback/``) are the terminal's own; the page's runs go to ``ui/``."""
    host: str = "127.0.0.1"
    port: int = 8501
    max_upload_bytes: int = 50_000_000
    uploads: Path | None = None
    """Where uploads go (default ``out_dir / "uploads"``), read as one more data root; never a shared data folder."""
    user: str | None = None
    model: str = "settings"
    planner: str = "kinds"
    tools_per_turn: int | None = None
    allowed_hosts: list[str] = field(default_factory=list)
    """Extra Host values to answer (e.g. a name the machine is reached by when serving remotely)."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> UIConfig:
        ui = settings.ui
        base = dict(data_roots=[Path(r).resolve() for r in settings.data.roots], out_dir=settings.output.dir.resolve(),
                    host=ui.host, port=ui.port, max_upload_bytes=int(ui.max_upload_mb * 1e6),
                    uploads=ui.uploads.resolve() if ui.uploads else None, user=ui.user)
        return cls(**(base | overrides))

    @property
    def upload_dir(self) -> Path:
        return (self.uploads or self.out_dir / "uploads").resolve()

    @property
    def roots(self) -> list[Path]:
        """The data roots the page reads: the configured ones, then the uploads folder."""
        return [*self.data_roots, *([] if any(self.upload_dir.is_relative_to(r) for r in self.data_roots) else [self.upload_dir])]


# ------------------------------------------------------------------ bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatBody(_Body):
    thread: str | None = None
    question: str = Field(min_length=1, max_length=4000)
    file: str | None = None


class RenameBody(_Body):
    name: str = Field(min_length=1, max_length=100)


class DiagnoseBody(_Body):
    path: str
    use_model: bool = True
    detectors: list[str] | None = Field(None, max_length=10)
    fresh: bool = False


class FeedbackBody(_Body):
    path: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    label: Literal["real", "false"]
    user: str | None = Field(None, max_length=100)
    verdict: str | None = None
    rank: int | None = None
    note: str | None = Field(None, max_length=500)


class SampleBody(_Body):
    bank: str = Field(min_length=1, max_length=300)
    path: str
    n: int = Field(16, ge=1, le=32)
    window: int = Field(100, ge=8, le=2000)
    seed: int = 0


class GenerateBody(_Body):
    path: str
    scenario: str = Field(min_length=1, max_length=20000)
    name: str = Field("mined", min_length=1, max_length=80)
    train_end: int | None = Field(None, gt=0)
    max_priors: int = Field(4, ge=1, le=8)


class DecisionBody(_Body):
    token: str = Field(min_length=1, max_length=200)
    action: Literal["approve", "reject"]
    drop: list[str] = Field(default_factory=list, max_length=50)
    note: str = Field("", max_length=2000)


# --------------------------------------------------------------------- app
def ndjson(events: Iterator[dict[str, Any]]) -> StreamingResponse:
    """One JSON object per line, flushed as produced; an error mid-stream becomes an ``error`` event."""

    def lines() -> Iterator[bytes]:
        try:
            for event in events:
                yield (json.dumps(event, default=str) + "\n").encode()
        except AnomalyGraphError as exc:
            yield (json.dumps({"type": "error", "message": str(exc)}) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"})


def create_app(config: UIConfig) -> FastAPI:
    app = FastAPI(title="AnomalyGraph workspace", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(PACKAGE / "templates"))  # autoescape on for .html
    out_dir = config.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    config.upload_dir.mkdir(parents=True, exist_ok=True)
    roots = config.roots
    store = FeedbackStore(out_dir / "feedback")  # where `anomalygraph feedback` writes too
    runs = out_dir / "ui"

    def artifact_url(path: str) -> str:
        return "/api/artifact?path=" + quote(str(path))

    chat = ChatService(out_dir=out_dir / "chat", data_roots=roots, plot_url=artifact_url, model=config.model,
                       planner=config.planner, tools_per_turn=config.tools_per_turn)
    diagnoses = DiagnosisJobs(out_root=runs / "diagnosis", data_roots=roots, model=config.model,
                              feedback_dir=store.root)
    banks = RuleBankJobs(out_root=runs / "rulebanks", data_roots=roots)
    hosts = {f"{h}:{config.port}" for h in ("127.0.0.1", "localhost", config.host)} | {config.host, "localhost", "127.0.0.1"}
    hosts |= set(config.allowed_hosts)
    loopback = is_loopback(config.host)  # served remotely on purpose, the Host check would only get in the way
    app.state.config = config

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        host = request.headers.get("host", "")
        if loopback and host not in hosts:
            return JSONResponse({"error": f"this workspace does not answer for host {host!r}"}, status_code=421)
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD", "OPTIONS") and origin and urlsplit(origin).netloc != host:
            return JSONResponse({"error": "requests from another site are refused"}, status_code=403)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.exception_handler(AnomalyGraphError)
    async def user_error(request: Request, exc: AnomalyGraphError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    app.mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static")

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "index.html", {
            "roots": [str(r) for r in roots], "max_mb": round(config.max_upload_bytes / 1e6, 1),
            "uploads": str(config.upload_dir), "user": config.user or getpass.getuser(),
        })

    # ------------------------------------------------------------- chat
    @app.get("/api/threads")
    def threads() -> list[dict[str, Any]]:
        return [t.model_dump() for t in chat.threads()]

    @app.get("/api/threads/{thread}")
    def thread(thread: str) -> dict[str, Any]:
        turns, file = chat.history(thread)
        return {"id": thread, "file": file, "turns": [t.model_dump() for t in turns]}

    @app.post("/api/threads/{thread}/name")
    def rename(thread: str, body: RenameBody) -> dict[str, str]:
        chat.rename(thread, body.name)
        return {"id": thread, "name": body.name}

    @app.post("/api/chat")
    def ask(body: ChatBody) -> StreamingResponse:
        thread = check_thread_id(body.thread) if body.thread else new_thread_id()
        file = str(data_path(body.file, roots)) if body.file else None
        return ndjson(chat.stream(thread, body.question, file))

    # ------------------------------------------------------------ files
    @app.get("/api/files")
    def data_files() -> dict[str, Any]:
        return {"roots": [str(r) for r in roots], "uploads": str(config.upload_dir),
                "files": [f.model_dump() for f in list_files(roots)]}

    @app.get("/api/files/summary")
    def file_summary(path: str) -> dict[str, Any]:
        real = data_path(path, roots)
        return summarize(real, load_series(real)).model_dump()

    @app.post("/api/files")
    async def upload(request: Request, file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        declared = int(request.headers.get("content-length") or 0)
        if declared > config.max_upload_bytes + 64_000:
            raise HTTPException(413, f"the upload is over the limit of {config.max_upload_bytes / 1e6:.1f} MB")
        data = bytearray()
        while chunk := await file.read(READ_CHUNK):
            data += chunk
            if len(data) > config.max_upload_bytes:
                raise HTTPException(413, f"{safe_name(file.filename or 'file')}: over the upload limit of "
                                         f"{config.max_upload_bytes / 1e6:.1f} MB")
        path, summary = save_upload(file.filename or "upload", bytes(data), config.upload_dir, max_bytes=config.max_upload_bytes)
        return {"path": str(path), "summary": summary.model_dump()}

    @app.get("/api/artifact")
    def artifact(path: str) -> FileResponse:
        real = artifact_path(path, out_dir)
        return FileResponse(real, media_type=ARTIFACT_SUFFIXES[real.suffix.lower()],
                            headers={"Content-Disposition": f'inline; filename="{safe_name(real.name)}"'})

    @app.get("/api/download")
    def download(path: str) -> FileResponse:
        real = artifact_path(path, out_dir)
        return FileResponse(real, media_type="application/octet-stream", filename=safe_name(real.name))

    # --------------------------------------------------------- diagnose
    @app.post("/api/diagnose")
    def diagnose(body: DiagnoseBody) -> StreamingResponse:
        real = data_path(body.path, roots)
        return ndjson(diagnoses.run(real, use_model=body.use_model, detectors=body.detectors, fresh=body.fresh))

    @app.get("/api/diagnosis", response_class=HTMLResponse)
    def diagnosis_report(request: Request, path: str) -> HTMLResponse:
        """The latest report of a file as an HTML fragment (the template escapes every value)."""
        real = data_path(path, roots)
        verdict = diagnoses.latest(real)
        if verdict is None:
            raise DataError(f"{real.name}: no diagnosis yet; run one first")
        folder = diagnoses.folder(real)
        return templates.TemplateResponse(request, "report.html", {
            "v": verdict, "path": str(real), "artifact": artifact_url,
            "verdict_file": str(folder / "verdict.json"), "report_file": verdict.report_path,
            "explanations": {e.interval.rank: markdown_html(e.text) for e in verdict.explanations},
        })

    # --------------------------------------------------------- feedback
    @app.post("/api/feedback")
    def feedback(body: FeedbackBody) -> dict[str, Any]:
        real = data_path(body.path, roots)
        if body.verdict:
            artifact_path(body.verdict, out_dir)  # a verdict the workspace wrote, or none
        mark = make_mark(real, load_series(real), body.start, body.end, body.label,
                         (body.user or config.user or getpass.getuser()).strip()[:100] or "unknown",
                         verdict=body.verdict, rank=body.rank, note=body.note)
        store.add(mark)
        return mark.model_dump(mode="json")

    @app.get("/api/feedback")
    def feedback_marks(path: str) -> list[dict[str, Any]]:
        real = data_path(path, roots)
        return [m.model_dump(mode="json") for m in store.marks(real)]

    # -------------------------------------------------------- rule banks
    @app.get("/api/rulebanks")
    def rulebanks() -> list[dict[str, Any]]:
        from anomalygraph.rulebank.store import builtin_banks, load_bank

        rows = []
        for source, where in [(n, "built-in") for n in builtin_banks()] + [
                (str(p), "made here") for p in sorted((runs / "rulebanks").glob("*.yaml"))]:
            bank = load_bank(source)
            rows.append({"id": source, "name": bank.name, "where": where, "version": bank.version, "rules": len(bank.rules),
                         "operators": sorted({r.operator for r in bank.rules}), "made_by": bank.origin.made_by})
        return rows

    def bank_source(ref: str) -> str:
        from anomalygraph.rulebank.store import builtin_banks

        if ref in builtin_banks():
            return ref
        return str(artifact_path(ref, runs / "rulebanks"))

    @app.get("/api/rulebanks/show")
    def rulebank(bank: str) -> dict[str, Any]:
        from anomalygraph.rulebank.store import load_bank

        loaded = load_bank(bank_source(bank))
        return {"name": loaded.name, "version": loaded.version, "made_by": loaded.origin.made_by,
                "rules": [{"id": r.id, "operator": r.operator, "morphology": r.morphology, "weight": r.weight,
                           "mechanism": r.mechanism, "params": {k: json.loads(v.model_dump_json()) for k, v in r.params.items()}}
                          for r in loaded.rules]}

    @app.post("/api/rulebanks/sample")
    def sample(body: SampleBody) -> dict[str, Any]:
        from anomalygraph.plots.rulebank import plot_pseudo_anomalies
        from anomalygraph.rulebank.sampler import PAGSampler
        from anomalygraph.rulebank.store import load_bank

        loaded = load_bank(bank_source(body.bank))
        real = data_path(body.path, roots)
        series = load_series(real).train()
        batch = PAGSampler(loaded, series, window=body.window, seed=body.seed).sample(body.n)
        png = runs / "samples" / f"{safe_name(loaded.name)}_{safe_name(real.stem)}_{body.seed}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        plot_pseudo_anomalies(batch, png, channel_names=series.channels,
                              title=f"bank '{loaded.name}' on {series.name} (L={body.window}, seed {body.seed})")
        return {"plot": artifact_url(str(png)), "windows": body.n}

    @app.post("/api/rulebanks/generate")
    def generate(body: GenerateBody) -> StreamingResponse:
        real = data_path(body.path, roots)
        return ndjson(banks.start(real, body.scenario, body.name, train_end=body.train_end, max_priors=body.max_priors))

    @app.post("/api/rulebanks/decision")
    def decide(body: DecisionBody) -> StreamingResponse:
        decision = ApprovalDecision(action=body.action, drop=body.drop, note=body.note or "answered in the web workspace")
        return ndjson(banks.decide(body.token, decision))

    return app


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def check_bind(host: str, allow_remote: bool) -> str:
    """Loopback unless the user asked for more: the workspace reads files and runs models for whoever reaches it."""
    if is_loopback(host):
        return host
    if not allow_remote:
        raise ConfigError(f"--host {host}: the workspace binds to 127.0.0.1 unless you pass --allow-remote "
                          "(anyone who reaches it can read the data roots and run the models)")
    return host


