// AnomalyGraph workspace. Every value from the server is put in the page with textContent;
// the only HTML inserted is what the server rendered and escaped (answers, the report fragment).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  file: localStorage.getItem("ag.file") || "",
  thread: new URLSearchParams(location.search).get("thread") || "",
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function toast(message, kind = "error") {
  const t = $("#toast");
  t.textContent = message;
  t.className = "show " + kind;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, 8000);
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error((body && (body.error || body.detail)) || response.statusText);
  return body;
}

const postJSON = (body) => ({ method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

// Read an NDJSON stream, calling onEvent for each object as it arrives.
async function stream(path, body, onEvent) {
  const response = await fetch(path, postJSON(body));
  if (!response.ok) {
    const err = await response.json().catch(() => ({}));
    throw new Error(err.error || err.detail || response.statusText);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line) onEvent(JSON.parse(line));
    }
  }
}

// ------------------------------------------------------------------ tabs, file
function showTab() {
  const name = (location.hash || "#chat").slice(1);
  document.querySelectorAll(".tab").forEach((s) => s.classList.toggle("active", s.id === "tab-" + name));
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.tab === name));
  if (name === "files") loadFiles();
  if (name === "rulebanks") loadBanks();
  if (name === "diagnose" && state.file) loadReport(false);
}

function setFile(path) {
  state.file = path;
  localStorage.setItem("ag.file", path);
  $("#current-file").textContent = path || "none chosen";
}

function user() { return $("#user-name").value.trim(); }

// ------------------------------------------------------------------------ chat
function setThread(id) {
  state.thread = id;
  $("#thread-id").textContent = id || "(new)";
  const url = new URL(location.href);
  if (id) url.searchParams.set("thread", id); else url.searchParams.delete("thread");
  history.replaceState(null, "", url);
}

async function loadThreads() {
  const list = $("#thread-list");
  const threads = await api("/api/threads");
  list.replaceChildren(...threads.map((t) => {
    const a = el("a", { href: "?thread=" + encodeURIComponent(t.id) + "#chat", class: t.id === state.thread ? "active" : "" }, t.name);
    a.addEventListener("click", (e) => { e.preventDefault(); openThread(t.id); });
    return el("li", {}, a, el("span", { class: "hint" }, ` ${t.turns} turn(s)`));
  }));
}

function stepView(step) {
  const ok = step.outcome === "ok";
  const details = el("details", { class: "step " + (ok ? "ok" : "failed") });
  const head = el("summary", {}, el("span", { class: "tool" }, step.call || step.name),
    el("span", { class: "secs" }, ` · ${Number(step.seconds || 0).toFixed(2)} s`),
    el("span", { class: "sum" }, (ok ? " ✓ " : ` ✗ (${step.outcome.replaceAll("_", " ")}) `) + (step.summary || "")));
  details.append(head);
  if (step.detail) details.append(el("pre", {}, step.detail));
  for (const w of step.warnings || []) details.append(el("p", { class: "note" }, "warning: " + w));
  const box = el("div", { class: "step-box" }, details);
  if (step.plot) box.append(el("img", { class: "plot", src: step.plot, alt: "plot from " + step.name }));
  return box;
}

function turnView(turn) {
  const answer = el("div", { class: "answer md" });
  if (turn.answer_html) answer.innerHTML = turn.answer_html; // server-rendered, raw HTML escaped
  const box = el("div", { class: "turn" }, el("div", { class: "question" }, el("b", {}, "you: "), turn.question),
    el("div", { class: "steps" }, ...(turn.steps || []).map(stepView)), answer);
  for (const n of turn.notes || []) box.append(el("p", { class: "note" }, "note: " + n));
  return box;
}

async function openThread(id) {
  setThread(id);
  const data = await api("/api/threads/" + encodeURIComponent(id));
  $("#transcript").replaceChildren(...data.turns.map(turnView));
  if (data.file && !state.file) setFile(data.file);
  loadThreads();
}

async function ask(event) {
  event.preventDefault();
  const question = $("#question").value.trim();
  if (!question) return;
  $("#question").value = "";
  const turn = turnView({ question, steps: [], answer_html: "", notes: [] });
  turn.classList.add("live");
  $("#transcript").append(turn);
  const steps = turn.querySelector(".steps");
  const answer = turn.querySelector(".answer");
  const status = el("p", { class: "status" }, "thinking…");
  turn.append(status);
  let running = null;
  let finished = null;
  $("#ask").disabled = true;
  try {
    await stream("/api/chat", { thread: state.thread || null, question, file: state.file || null }, (ev) => {
      if (ev.type === "node") status.textContent = { plan: "choosing the next step…", act: "preparing the tool's arguments…", respond: "writing the answer…", agent: "thinking…", classify: "reading the question…" }[ev.node] || status.textContent;
      else if (ev.type === "tool_start") {
        running = el("div", { class: "step-box running" }, el("span", { class: "tool" }, "→ " + ev.call), el("span", { class: "secs" }, " running…"));
        steps.append(running);
      } else if (ev.type === "tool_end") {
        const view = stepView({ ...ev, call: running ? running.querySelector(".tool").textContent.slice(2) : ev.name });
        if (running) running.replaceWith(view); else steps.append(view);
        running = null;
      } else if (ev.type === "token") answer.append(document.createTextNode(ev.text));
      else if (ev.type === "done") finished = ev; else if (ev.type === "error") { status.textContent = "error: " + ev.message; toast(ev.message); }
    });
    if (finished) {
      // the stored turn replaces the live one: every step with its full result, as a reload shows it
      if (finished.thread !== state.thread) setThread(finished.thread);
      const data = await api("/api/threads/" + encodeURIComponent(finished.thread));
      const stored = turnView(data.turns[data.turns.length - 1]);
      stored.classList.add("finished");
      stored.append(el("p", { class: "status" }, `${finished.calls} tool call(s), ${finished.ok} ok · ${finished.seconds} s`));
      turn.replaceWith(stored);
    }
    loadThreads();
  } catch (err) { status.textContent = "error: " + err.message; toast(err.message); }
  finally { $("#ask").disabled = false; }
}

// ----------------------------------------------------------------------- files
async function loadFiles() {
  const data = await api("/api/files");
  const filter = $("#file-filter").value.trim().toLowerCase();
  const rows = data.files.filter((f) => !filter || f.path.toLowerCase().includes(filter)).slice(0, 300).map((f) => {
    const use = el("button", { type: "button", class: "use" }, f.path === state.file ? "current" : "use");
    use.addEventListener("click", () => chooseFile(f.path));
    return el("tr", { "data-path": f.path }, el("td", { class: "path" }, f.relative), el("td", {}, (f.size / 1e3).toFixed(1) + " kB"), el("td", {}, use));
  });
  $("#file-table tbody").replaceChildren(...rows);
}

function summaryView(s) {
  return el("div", { class: "summary" },
    el("p", {}, el("b", {}, s.name), ` · ${s.length} rows · ${s.channels.length} channel(s)` + (s.first ? ` · ${s.first} to ${s.last}` : "") + (s.labelled ? " · labelled" : "")),
    el("p", {}, "channels: ", el("span", { class: "columns" }, s.channels.join(", "))));
}

async function chooseFile(path) {
  try {
    const s = await api("/api/files/summary?path=" + encodeURIComponent(path));
    setFile(s.path);
    $("#upload-result").replaceChildren(el("p", {}, "current file: ", el("span", { class: "path" }, s.path)), summaryView(s));
    loadFiles();
  } catch (err) { toast(err.message); }
}

async function upload(event) {
  event.preventDefault();
  const input = $("#upload-file");
  if (!input.files.length) return;
  const file = input.files[0];
  const out = $("#upload-result");
  const maxMb = Number(document.body.dataset.maxMb);
  const form = new FormData();
  form.append("file", file);
  out.replaceChildren(el("p", { class: "status" }, `uploading ${file.name}…`));
  try {
    const data = await api("/api/files", { method: "POST", body: form });
    setFile(data.path);
    out.replaceChildren(el("p", { class: "ok" }, "stored ", el("span", { class: "path" }, data.path)), summaryView(data.summary));
    loadFiles();
  } catch (err) {
    out.replaceChildren(el("p", { class: "error" }, `${file.name}: ${err.message}` + (file.size > maxMb * 1e6 ? ` (limit ${maxMb} MB)` : "")));
  }
}

// -------------------------------------------------------------------- diagnose
async function diagnose(event) {
  event.preventDefault();
  if (!state.file) { toast("choose or upload a file first (Files)"); return; }
  const progress = $("#progress");
  progress.replaceChildren();
  $("#report").replaceChildren();
  const detectors = $("#detectors").value.split(",").map((d) => d.trim()).filter(Boolean);
  const started = performance.now();
  $("#diagnose").disabled = true;
  progress.append(el("li", { class: "running" }, "profiling the series…"));
  try {
    await stream("/api/diagnose", { path: state.file, use_model: $("#use-model").checked, detectors: detectors.length ? detectors : null, fresh: $("#fresh").checked }, (ev) => {
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      progress.querySelectorAll("li.running").forEach((li) => li.remove());
      if (ev.type === "node") progress.append(el("li", { class: "done", "data-node": ev.node }, `✓ ${ev.node}`, el("span", { class: "hint" }, ` ${ev.detail} (${secs} s)`)));
      else if (ev.type === "verdict") progress.append(el("li", { class: "done" }, ev.resumed ? "✓ the stored verdict for this file and its marks" : "✓ finished", el("span", { class: "hint" }, ` (${secs} s)`)));
      else if (ev.type === "error") { progress.append(el("li", { class: "error" }, "error: " + ev.message)); toast(ev.message); }
    });
    await loadReport(true);
  } catch (err) { toast(err.message); }
  finally { $("#diagnose").disabled = false; }
}

async function loadReport(loud) {
  try {
    const html = await api("/api/diagnosis?path=" + encodeURIComponent(state.file));
    $("#report").innerHTML = html; // rendered by the server's autoescaping template
  } catch (err) { if (loud) toast(err.message); else $("#report").replaceChildren(); }
}

async function mark(button) {
  const row = button.closest("tr");
  const report = button.closest(".report");
  try {
    const m = await api("/api/feedback", postJSON({
      path: report.dataset.path, start: Number(row.dataset.start), end: Number(row.dataset.end), label: button.dataset.label,
      user: user() || null, verdict: report.dataset.verdict, rank: Number(row.dataset.rank),
    }));
    row.querySelector(".marks").textContent = `${m.label === "real" ? "real anomaly" : "false alarm"} (${m.user}, just now; rerun to use it)`;
    toast(`marked rows ${m.start}..${m.end} as ${m.label === "real" ? "a real anomaly" : "a false alarm"}`, "ok");
  } catch (err) { toast(err.message); }
}

// ------------------------------------------------------------------ rule banks
async function loadBanks() {
  const banks = await api("/api/rulebanks");
  $("#bank-table tbody").replaceChildren(...banks.map((b) => {
    const show = el("button", { type: "button" }, "show");
    show.addEventListener("click", () => showBank(b.id));
    const sample = el("button", { type: "button" }, "sample on current file");
    sample.addEventListener("click", () => sampleBank(b.id));
    return el("tr", {}, el("td", {}, b.name), el("td", {}, b.where), el("td", {}, String(b.rules)), el("td", {}, b.operators.join(", ")), el("td", {}, b.made_by), el("td", {}, show, sample));
  }));
}

async function showBank(id) {
  try {
    const bank = await api("/api/rulebanks/show?bank=" + encodeURIComponent(id));
    const rows = bank.rules.map((r) => el("tr", {}, el("td", {}, r.id), el("td", {}, r.operator), el("td", {}, r.morphology || ""), el("td", {}, String(r.weight)), el("td", {}, r.mechanism)));
    $("#bank-view").replaceChildren(el("h3", {}, `${bank.name} v${bank.version} (${bank.made_by})`),
      el("table", {}, el("thead", {}, el("tr", {}, ...["rule", "operator", "morphology", "weight", "mechanism"].map((h) => el("th", {}, h)))), el("tbody", {}, ...rows)));
  } catch (err) { toast(err.message); }
}

async function sampleBank(id) {
  if (!state.file) { toast("choose or upload a file first (Files)"); return; }
  try {
    const data = await api("/api/rulebanks/sample", postJSON({ bank: id, path: state.file }));
    $("#bank-view").replaceChildren(el("p", {}, `${data.windows} pseudo-anomalous windows`), el("img", { class: "plot", src: data.plot, alt: "rule-bank samples" }));
  } catch (err) { toast(err.message); }
}

function genEvent(ev) {
  const progress = $("#gen-progress");
  if (ev.type === "node") progress.append(el("li", { class: "done" }, `✓ ${ev.node}`, el("span", { class: "hint" }, ` ${ev.detail} (${ev.seconds} s)`)));
  else if (ev.type === "approval") approvalView(ev);
  else if (ev.type === "result") {
    const r = ev.result;
    $("#approval").replaceChildren(el("p", { class: r.status === "stored" ? "ok" : "error" },
      r.status === "stored" ? `stored bank '${r.bank_name}' with ${r.rules.length} rule(s) at ` : `bank ${r.status}; nothing was written `, el("span", { class: "path" }, r.bank_path || "")));
    loadBanks();
  } else if (ev.type === "error") { progress.append(el("li", { class: "error" }, "error: " + ev.message)); toast(ev.message); }
}

function approvalView(ev) {
  const req = ev.request;
  const rows = req.rules.map((r) => el("tr", {}, el("td", {}, el("input", { type: "checkbox", class: "drop", value: r.id, "aria-label": "leave out " + r.id })),
    el("td", {}, r.id), el("td", {}, r.fault), el("td", {}, r.morphology), el("td", {}, r.operator), el("td", {}, r.duration), el("td", {}, r.mechanism), el("td", {}, r.critique || "")));
  const approve = el("button", { type: "button", id: "approve" }, "Approve");
  const reject = el("button", { type: "button", id: "reject" }, "Reject");
  const answer = (action) => async () => {
    approve.disabled = reject.disabled = true;
    const drop = [...document.querySelectorAll("#approval input.drop:checked")].map((c) => c.value);
    try { await stream("/api/rulebanks/decision", { token: ev.token, action, drop, note: "" }, genEvent); }
    catch (err) { toast(err.message); approve.disabled = reject.disabled = false; }
  };
  approve.addEventListener("click", answer("approve"));
  reject.addEventListener("click", answer("reject"));
  $("#approval").replaceChildren(el("h3", {}, `Bank '${req.bank}' awaits your approval (${req.rules.length} rule(s))`),
    el("table", {}, el("thead", {}, el("tr", {}, ...["leave out", "rule", "fault", "morphology", "operator", "duration", "mechanism", "critique"].map((h) => el("th", {}, h)))), el("tbody", {}, ...rows)),
    ...(req.notes || []).map((n) => el("p", { class: "note" }, "note: " + n)),
    el("div", { class: "plots" }, ...req.plots.map((p) => el("img", { class: "plot", src: "/api/artifact?path=" + encodeURIComponent(p), alt: "samples of the proposed rules" }))),
    el("p", {}, approve, " ", reject));
}

async function generate(event) {
  event.preventDefault();
  if (!state.file) { toast("choose or upload a file first (Files)"); return; }
  $("#gen-progress").replaceChildren(el("li", { class: "running" }, "starting (the model may take a moment)…"));
  $("#approval").replaceChildren();
  const trainEnd = $("#train-end").value ? Number($("#train-end").value) : null;
  try {
    await stream("/api/rulebanks/generate", { path: state.file, scenario: $("#scenario").value, name: $("#bank-name").value || "mined", train_end: trainEnd }, (ev) => {
      $("#gen-progress").querySelectorAll("li.running").forEach((li) => li.remove());
      genEvent(ev);
    });
  } catch (err) { toast(err.message); }
}

// ----------------------------------------------------------------------- start
document.addEventListener("DOMContentLoaded", () => {
  $("#user-name").value = localStorage.getItem("ag.user") || document.body.dataset.user || "";
  $("#user-name").addEventListener("change", () => localStorage.setItem("ag.user", user()));
  setFile(state.file);
  $("#ask-form").addEventListener("submit", ask);
  $("#question").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#ask-form").requestSubmit(); } });
  $("#new-thread").addEventListener("click", () => { setThread(""); $("#transcript").replaceChildren(); loadThreads(); });
  $("#rename-thread").addEventListener("click", async () => {
    if (!state.thread) { toast("ask a first question to start the thread"); return; }
    try { await api(`/api/threads/${encodeURIComponent(state.thread)}/name`, postJSON({ name: $("#thread-name").value || state.thread })); loadThreads(); }
    catch (err) { toast(err.message); }
  });
  $("#upload-form").addEventListener("submit", upload);
  $("#file-filter").addEventListener("input", loadFiles);
  $("#diagnose-form").addEventListener("submit", diagnose);
  $("#report").addEventListener("click", (e) => { if (e.target.matches("button.mark")) mark(e.target); });
  $("#generate-form").addEventListener("submit", generate);
  window.addEventListener("hashchange", showTab);
  showTab();
  if (state.thread) openThread(state.thread).catch((err) => toast(err.message)); else loadThreads();
});
