/* taskorch dashboard: plain JavaScript, no build step. Reads api/v1, follows api/v1/events; every
   path is relative to the page's <base> (the server's root, or a proxy's prefix). */
"use strict";

const TERMINAL = new Set(["merged", "failed", "cancelled"]);
const CANCELLABLE = new Set([
  "pending", "nlp_parsing", "task_decomposition", "dependency_resolution", "agent_assignment", "processing",
]);
const EVENT_KINDS = [
  "workflow:transition", "workflow:escalated", "task:enqueued", "task:started", "task:complete",
  "task:retry", "task:failed", "task:zombie", "task:released", "task:blocked", "task:cancelled",
];
const TONE = {
  merged: "ok", completed: "ok", validation_passed: "ok",
  failed: "bad", validation_failed: "warn", blocked: "warn", cancelled: "wait",
  running: "run", assigned: "run", processing: "run", nlp_parsing: "run", task_decomposition: "run",
  dependency_resolution: "run", agent_assignment: "run", pr_created: "run", validation_running: "run",
};
const LEGEND = [["completed", "var(--ok)"], ["running", "var(--run)"], ["waiting", "#c7ced6"],
  ["blocked", "#e0a43a"], ["failed", "var(--bad)"]];

/* --- small helpers ------------------------------------------------------------------------- */

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A state change is always JSON (the server refuses anything else: another site's page could
// send a form or text, but not JSON), with {} when there is nothing to say.
async function api(path, options = {}) {
  const method = options.method || "GET";
  const response = await fetch(path, {
    headers: { "Accept": "application/json", "Content-Type": "application/json" },
    credentials: "same-origin",
    ...options,
    body: method === "GET" ? undefined : options.body || "{}",
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && body.detail;
    const text = Array.isArray(detail)
      ? detail.map((d) => `${(d.loc || []).slice(1).join(".") || "input"}: ${d.msg}`).join("; ")
      : detail || `${response.status} ${response.statusText}`;
    const error = new Error(text);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

const tone = (state) => TONE[state] || "wait";
const pill = (state) => el("span", { class: `pill ${tone(state)}`, text: state.replace(/_/g, " ") });

function progressBar(percent, done) {
  const bar = el("div");
  bar.style.width = `${Math.max(0, Math.min(100, percent || 0))}%`;
  return el("div", { class: `progress${done ? " done" : ""}` }, bar);
}

function duration(start, end) {
  if (!start) return "–";
  const ms = (end ? new Date(end) : new Date()) - new Date(start);
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "–");
const stamp = (iso) => (iso ? new Date(iso).toLocaleString([], { hour12: false }) : "–");

function debounce(fn, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

/* At most one call per `ms`, always after the latest request: a steady stream of events still
   refreshes the page (a debounce would wait for a pause that may never come). */
function throttle(fn, ms) {
  let timer = null;
  return () => {
    if (timer === null) timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}

/* --- live connection ------------------------------------------------------------------------ */

function follow(query, onEvent) {
  const live = document.getElementById("live");
  const label = live.querySelector("span");
  const source = new EventSource(`api/v1/events${query}`);
  source.onopen = () => { live.classList.add("on"); label.textContent = "live"; };
  source.onerror = () => { live.classList.remove("on"); label.textContent = "reconnecting"; };
  for (const kind of EVENT_KINDS) source.addEventListener(kind, (e) => onEvent(JSON.parse(e.data)));
  return source;
}

async function showHealth() {
  const badge = document.getElementById("health");
  try {
    render(await api("api/v1/health"));
  } catch (error) {
    if (error.status === 503 && error.body && error.body.components) {
      render(error.body); // something is down: the report says what
      return;
    }
    badge.className = "health down";
    badge.textContent = "unreachable";
  }
  function render(report) {
    badge.className = `health ${report.status}`;
    const bad = Object.entries(report.components).filter(([, c]) => c.status !== "ok");
    badge.textContent = bad.length ? `${report.status}: ${bad.map(([n]) => n).join(", ")}` : "healthy";
    badge.title = Object.entries(report.components)
      .map(([name, c]) => `${name}: ${c.status} — ${c.detail}`).join("\n");
  }
}

/* --- home: workflows, agents, submit --------------------------------------------------------- */

const PAGE = 50;
let page = 0;

async function renderWorkflows() {
  const rows = await api(`api/v1/workflows?limit=${PAGE + 1}&offset=${page * PAGE}`);
  if (!rows.length && page > 0) { // the last page emptied meanwhile
    page -= 1;
    return renderWorkflows();
  }
  const more = rows.length > PAGE;
  const workflows = rows.slice(0, PAGE);
  document.getElementById("pager").hidden = page === 0 && !more;
  document.getElementById("page-newer").disabled = page === 0;
  document.getElementById("page-older").disabled = !more;
  document.getElementById("page-label").textContent =
    `${page * PAGE + 1}–${page * PAGE + workflows.length}`;
  const body = document.querySelector("#workflows tbody");
  body.replaceChildren(...workflows.map((w) => el("tr", {},
    el("td", {}, el("a", { class: "mono", href: `workflows/${w.workflow_id}`, text: w.workflow_id })),
    el("td", { class: "title", title: w.title || "" }, w.title || ""),
    el("td", {}, w.waiting_for === "approval"
      ? el("span", { class: "pill warn", text: "awaiting approval", title: "validated; approve or reject it" })
      : pill(w.state)),
    el("td", {}, el("div", { class: "progress-cell" },
      progressBar(w.progress_percent, w.state === "merged"),
      el("span", { class: "pct", text: `${Math.round(w.progress_percent || 0)}%` }))),
    el("td", { class: "muted wide" }, duration(w.start_time, w.end_time)),
  )));
  document.getElementById("wf-empty").hidden = workflows.length > 0 || page > 0;
  document.getElementById("workflows").hidden = workflows.length === 0;
  const active = workflows.filter((w) => !TERMINAL.has(w.state)).length;
  document.getElementById("wf-count").textContent =
    workflows.length ? `${active} running · ${workflows.length} shown` : "";
}

async function renderPending() {
  const tasks = await api("api/v1/tasks?status=pending&limit=50");
  document.getElementById("pending-card").hidden = tasks.length === 0;
  document.getElementById("pending-count").textContent =
    tasks.length >= 50 ? "the 50 newest" : `${tasks.length} waiting for a workflow`;
  document.getElementById("pending").replaceChildren(...tasks.map((t) => el("li", { "data-task": t.ref },
    el("span", { class: "mono muted", text: t.ref }),
    el("span", { class: "pending-title", title: t.title, text: t.title }),
    el("span", { class: `pill ${t.priority === "critical" || t.priority === "high" ? "warn" : "wait"}`, text: t.priority }))));
}

function setupPager(refresh) {
  document.getElementById("page-newer").addEventListener("click", () => { page = Math.max(0, page - 1); refresh(); });
  document.getElementById("page-older").addEventListener("click", () => { page += 1; refresh(); });
}

async function renderAgents() {
  const agents = await api("api/v1/agents");
  const box = document.getElementById("agents");
  if (!agents.length) {
    box.replaceChildren(el("p", { class: "empty", text: "No agents registered." }));
    return;
  }
  box.replaceChildren(...agents.map((a) => {
    const used = a.utilisation === null ? null : Math.round(a.utilisation * 100);
    const rate = a.success_rate === null ? "–" : `${Math.round(a.success_rate * 100)}%`;
    const usable = a.status === "available" || a.status === "busy";
    return el("div", { class: "agent" },
      el("div", { class: "agent-top" },
        el("span", { class: "agent-name", text: a.name }),
        el("span", { class: `pill ${usable ? "ok" : a.status === "offline" ? "bad" : "wait"}`, text: a.status })),
      el("div", { class: "agent-sub muted", text: a.adapter }),
      el("div", { class: "agent-figs" },
        el("span", {}, "utilisation ", el("b", { text: used === null ? "–" : `${used}%` }),
          a.max_concurrency ? ` (${a.active}/${a.max_concurrency})` : ""),
        el("span", {}, "success ", el("b", { text: rate })),
        el("span", {}, el("b", { text: a.attempts }), " attempts")),
      used === null ? null : progressBar(used, false),
      a.last_error ? el("div", { class: "node-error", text: `last error: ${a.last_error}` }) : null);
  }));
}

function setupForm() {
  const form = document.getElementById("submit-form");
  const note = document.getElementById("submit-note");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = document.getElementById("requirement").value.trim();
    if (!text) return;
    const button = document.getElementById("submit");
    button.disabled = true;
    note.className = "form-note";
    note.textContent = "Storing the requirement…";
    try {
      const title = text.split("\n")[0].slice(0, 120);
      const fields = { title, description: text, priority: document.getElementById("priority").value };
      const repo = document.getElementById("repo").value.trim();
      const merge = document.getElementById("merge").value;
      if (repo) fields.repo = repo;
      if (merge) fields.merge_policy = merge;
      const task = await api("api/v1/tasks", { method: "POST", body: JSON.stringify(fields) });
      note.textContent = `Stored as ${task.ref}; waiting for the daemon to start its workflow…`;
      const workflow = await workflowOf(task.id);
      if (workflow) {
        window.location.assign(`workflows/${workflow.workflow_id}`);
        return;
      }
      note.textContent = `${task.ref} is pending: it starts when \`taskorch serve\` has room for it.`;
    } catch (error) {
      note.className = "form-note bad";
      note.textContent = error.message;
    }
    button.disabled = false;
  });
}

async function workflowOf(taskId) {
  for (let i = 0; i < 60; i++) {
    const workflows = await api("api/v1/workflows?limit=50");
    const found = workflows.find((w) => w.task_id === taskId);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return null;
}

function home() {
  document.getElementById("home").hidden = false;
  document.getElementById("crumbs").replaceChildren(el("span", { text: "Workflows" }));
  setupForm();
  const refresh = throttle(() => {
    renderWorkflows().catch(console.error);
    renderPending().catch(console.error);
    renderAgents().catch(console.error);
  }, 400);
  setupPager(refresh);
  refresh();
  follow("", refresh);
  setInterval(refresh, 5000);
}

/* --- one workflow: header, DAG by stage, history, delivery ---------------------------------- */

async function renderWorkflow(id) {
  let wf;
  try {
    wf = await api(`api/v1/workflows/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status === 404 || error.status === 422) {
      document.getElementById("workflow").hidden = true;
      document.getElementById("missing").hidden = false;
      document.getElementById("missing-text").textContent = `No workflow ${id}.`;
      return null;
    }
    throw error;
  }
  document.title = `${wf.task.title} · taskorch`;
  document.getElementById("wf-title").textContent = wf.task.title;
  document.getElementById("wf-state").replaceWith(Object.assign(pill(wf.state), { id: "wf-state" }));
  document.getElementById("workflow").dataset.state = wf.state;
  const bar = document.getElementById("wf-bar");
  bar.style.width = `${wf.progress_percent}%`;
  bar.parentElement.classList.toggle("done", wf.state === "merged");
  const done = wf.subtasks.filter((s) => s.status === "completed").length;
  facts("wf-facts", [
    ["Workflow", el("span", { class: "mono", text: wf.workflow_id })],
    ["Task", wf.task.ref],
    ["Progress", `${done} / ${wf.subtasks.length} subtasks`],
    ["Stage", wf.current_stage ? `${wf.current_stage} of ${wf.stages.length}` : (wf.stages.length ? "all done" : "–")],
    ["Started", stamp(wf.start_time)],
    ["Duration", duration(wf.start_time, wf.end_time)],
    ["Planner", wf.planner || "–"],
    ["Cost", usageText(wf.cost)],
  ]);
  renderBudget(wf.budget);
  renderProblems(wf);
  const waiting = wf.waiting_for === "approval";
  document.getElementById("workflow").dataset.waiting = waiting ? wf.waiting_for : "";
  for (const id of ["wf-approval", "wf-approve", "wf-reject"]) document.getElementById(id).hidden = !waiting;
  document.getElementById("wf-cancel").hidden = !CANCELLABLE.has(wf.state);
  renderDag(wf);
  renderHistory(wf);
  renderDelivery(wf);
  return wf;
}

/* --- cost, budget, errors --------------------------------------------------------------------- */

const tokens = (n) => (n === null || n === undefined ? "–" : n >= 10000 ? `${(n / 1000).toFixed(1)}k` : String(n));
const usd = (x) => `$${x < 1 ? x.toFixed(4) : x.toFixed(2)}`;

function usageText(usage) {
  if (!usage || !usage.attempts) return "–";
  const parts = [usage.cost_usd === null ? "cost not reported" : usd(usage.cost_usd)];
  if (usage.tokens_in !== null || usage.tokens_out !== null) {
    parts.push(`${tokens(usage.tokens_in)} in / ${tokens(usage.tokens_out)} out tokens`);
  }
  return parts.join(" · ");
}

// The budget key comes with a workflow that has a budget; nothing is shown without one.
function renderBudget(budget) {
  const box = document.getElementById("wf-budget");
  box.hidden = !budget;
  if (!budget) return;
  const spent = budget.spent_usd || 0;
  const cap = budget.cap_usd;
  let text = cap ? `Spent ${usd(spent)} of ${usd(cap)} budget` : `Spent ${usd(spent)} (no USD cap)`;
  if (budget.predicted_usd) text += ` · next attempt predicted ${usd(budget.predicted_usd)}`;
  document.getElementById("budget-text").textContent = text;
  document.getElementById("budget-waiting").hidden = !budget.waiting;
  const bar = document.getElementById("budget-bar");
  bar.style.width = `${cap ? Math.min(100, (100 * spent) / cap) : 0}%`;
  bar.parentElement.classList.toggle("over", Boolean(cap && spent >= cap) || Boolean(budget.waiting));
  box.dataset.waiting = budget.waiting ? "yes" : "no";
}

// A failure's message often repeats across the subtasks it stopped: in full once here, short in
// the cards.
function renderProblems(wf) {
  const byText = new Map();
  for (const s of wf.subtasks) {
    if (!s.error || s.status === "completed") continue;
    if (!byText.has(s.error)) byText.set(s.error, []);
    byText.get(s.error).push(s.key);
  }
  document.getElementById("problems-card").hidden = byText.size === 0;
  document.getElementById("problems").replaceChildren(...[...byText].map(([text, keys]) =>
    el("div", { class: "problem" },
      el("div", { class: "problem-keys mono", text: keys.join(", ") }),
      el("pre", { class: "problem-text", text }))));
}

function shortError(text) {
  const first = text.split("\n")[0];
  return first.length > 90 ? `${first.slice(0, 90)}…` : first;
}

function facts(id, rows) {
  document.getElementById(id).replaceChildren(...rows.map(([name, value]) =>
    el("div", {}, el("dt", { text: name }), el("dd", {}, value))));
}

function renderDag(wf) {
  const dag = document.getElementById("dag");
  const edges = document.getElementById("edges");
  const byKey = new Map(wf.subtasks.map((s) => [s.key, s]));
  const columns = wf.stages.map((keys, index) => el("div", { class: "stage" },
    el("div", { class: "stage-head", text: `Stage ${index + 1}${keys.length > 1 ? " · parallel" : ""}` }),
    keys.map((key) => node(byKey.get(key)))));
  dag.replaceChildren(edges, ...columns);
  document.getElementById("dag-empty").hidden = wf.stages.length > 0;
  dag.parentElement.hidden = wf.stages.length === 0;
  document.getElementById("legend").replaceChildren(...LEGEND.map(([name, colour]) => {
    const item = el("span", { text: name });
    item.style.setProperty("--c", colour);
    return item;
  }));
  drawEdges(wf);
}

function node(subtask) {
  const state = subtask.status;
  const attempts = subtask.attempts === 1 ? "1 attempt" : `${subtask.attempts} attempts`;
  const cost = subtask.cost_usd === null || subtask.cost_usd === undefined ? null : usd(subtask.cost_usd);
  return el("div", {
    class: `node ${tone(state)}`, "data-key": subtask.key, "data-state": state,
    role: "button", tabindex: "0", title: "Show its attempts",
  },
    el("div", { class: "node-key mono", text: subtask.key }),
    el("div", { class: "node-title", text: subtask.title }),
    el("div", { class: "node-meta" },
      pill(state),
      el("span", { title: `${subtask.assigned_to}/${subtask.worker_type}` },
        `${subtask.agent || "unassigned"} · ${attempts}${cost ? ` · ${cost}` : ""}`)),
    subtask.error && state !== "completed"
      ? el("div", { class: "node-error short", text: shortError(subtask.error) }) : null);
}

function drawEdges(wf) {
  const dag = document.getElementById("dag");
  const svg = document.getElementById("edges");
  const origin = dag.getBoundingClientRect();
  svg.setAttribute("width", dag.scrollWidth);
  svg.setAttribute("height", dag.scrollHeight);
  const box = (key) => {
    const found = dag.querySelector(`.node[data-key="${CSS.escape(key)}"]`);
    return found && found.getBoundingClientRect();
  };
  const paths = [];
  for (const subtask of wf.subtasks) {
    const to = box(subtask.key);
    for (const dep of subtask.dependencies) {
      const from = box(dep);
      if (!from || !to) continue;
      const x1 = from.right - origin.left, y1 = from.top + from.height / 2 - origin.top;
      const x2 = to.left - origin.left, y2 = to.top + to.height / 2 - origin.top;
      const bend = Math.max(24, (x2 - x1) / 2);
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`);
      const settled = wf.subtasks.find((s) => s.key === dep);
      if (settled && settled.status === "completed") path.setAttribute("class", "done");
      paths.push(path);
    }
  }
  svg.replaceChildren(...paths);
}

function renderHistory(wf) {
  document.getElementById("history").replaceChildren(...wf.history.map((h) =>
    el("li", {}, el("time", { text: clock(h.time) }), pill(h.to))));
}

function renderDelivery(wf) {
  const pr = wf.pull_request || {};
  const validation = wf.validation || {};
  const github = pr.github || {};
  const link = pr.url || pr.html_url || github.url || github.html_url;
  const changes = wf.pull_request
    ? `${pr.commits_count ?? 0} commits · ${pr.files_changed ?? 0} files (+${pr.insertions ?? 0} −${pr.deletions ?? 0})`
    : "–";
  const target = wf.target;
  let outcome = TERMINAL.has(wf.state) ? wf.state : "in progress";
  if (wf.state === "merged" && wf.result && wf.result.commit) {
    outcome = `merged into ${wf.result.base_branch || "the base branch"} at ${wf.result.commit.slice(0, 10)}`;
  } else if (wf.waiting_for === "approval") {
    outcome = "validated; waiting for approval";
  } else if (wf.state === "failed" && wf.result && wf.result.reason) {
    outcome = `failed: ${wf.result.reason}`;
  } else if (wf.escalation) {
    outcome = `blocked by ${wf.escalation.blocking_subtask}: ${wf.escalation.reason || ""}`;
  }
  facts("delivery", [
    ["Target", target
      ? el("span", {}, el("span", { class: "mono", text: `${target.base_branch || "base"} of ${target.repo}` }),
        ` · merge ${target.merge_policy === "approve" ? "after approval" : "when validated"}`)
      : "–"],
    ["Branch", pr.head_branch ? el("span", { class: "mono", text: `${pr.head_branch} → ${pr.base_branch}` }) : "–"],
    ["Pull request", link ? el("a", { href: link, text: link }) : changes],
    ["Validation", validation.summary || "–"],
    ["Result", outcome],
  ]);
}

/* --- the attempt panel: every attempt of a subtask, live output while it runs ------------------ */

const panel = { workflow: null, key: null, seq: 0, timer: null, offset: 0, number: null, mark: "" };
const LIVE_CHARS = 100000;

function openPanel(workflowId, subtask) {
  closePanel();
  panel.workflow = workflowId;
  panel.key = subtask.key;
  panel.mark = `${subtask.status}/${subtask.attempts}`;
  const box = document.getElementById("panel");
  box.dataset.key = subtask.key;
  document.getElementById("panel-key").textContent = subtask.key;
  document.getElementById("panel-title").textContent = subtask.title;
  document.getElementById("attempts").replaceChildren(el("p", { class: "muted", text: "Loading attempts…" }));
  box.hidden = false;
  loadAttempts().catch(showPanelError);
}

// An open panel whose subtask moved on (started, retried, ended) while no output was being
// followed shows its attempts again.
function followPanel(wf) {
  if (!panel.key || !wf) return;
  const subtask = wf.subtasks.find((s) => s.key === panel.key);
  const mark = subtask ? `${subtask.status}/${subtask.attempts}` : "";
  if (mark !== panel.mark && panel.timer === null) loadAttempts().catch(showPanelError);
  panel.mark = mark;
}

function closePanel() {
  clearTimeout(panel.timer);
  panel.timer = null;
  panel.key = null;
  panel.seq += 1; // answers still on their way are dropped
  document.getElementById("panel").hidden = true;
}

function showPanelError(error) {
  document.getElementById("attempts").replaceChildren(el("p", { class: "form-note bad", text: error.message }));
}

const subtaskPath = () =>
  `api/v1/workflows/${encodeURIComponent(panel.workflow)}/subtasks/${encodeURIComponent(panel.key)}`;

async function loadAttempts() {
  const seq = ++panel.seq;
  clearTimeout(panel.timer);
  panel.timer = null;
  const attempts = await api(`${subtaskPath()}/attempts`);
  if (seq !== panel.seq) return;
  const box = document.getElementById("attempts");
  if (!attempts.length) {
    box.replaceChildren(el("p", { class: "empty", text: "No attempt yet: the subtask waits for its turn." }));
    return;
  }
  box.replaceChildren(...attempts.slice().reverse().map(attemptView));
  for (const output of box.querySelectorAll(".output")) output.scrollTop = output.scrollHeight; // the end
  const running = attempts.find((a) => a.running);
  if (running) {
    panel.number = running.number;
    panel.offset = running.output_bytes;
    panel.timer = setTimeout(() => pollOutput(seq), 1000);
  }
}

async function pollOutput(seq) {
  if (seq !== panel.seq) return;
  let chunk;
  try {
    chunk = await api(`${subtaskPath()}/output?attempt=${panel.number}&offset=${panel.offset}`);
  } catch (error) {
    panel.timer = setTimeout(() => pollOutput(seq), 3000); // a restart of the server: try again
    return;
  }
  if (seq !== panel.seq) return;
  const live = document.getElementById("live-output");
  if (live && chunk.text) {
    const text = live.textContent + chunk.text;
    live.textContent = text.length > LIVE_CHARS ? `…${text.slice(-LIVE_CHARS)}` : text;
    live.scrollTop = live.scrollHeight;
  }
  panel.offset = chunk.next_offset;
  if (chunk.running) panel.timer = setTimeout(() => pollOutput(seq), 1000);
  else loadAttempts().catch(showPanelError); // ended: its outcome, figures and diff
}

function attemptView(a) {
  const usage = [];
  if (a.tokens_in !== null || a.tokens_out !== null) usage.push(`${tokens(a.tokens_in)} in / ${tokens(a.tokens_out)} out tokens`);
  usage.push(a.cost_usd === null ? "cost not reported" : usd(a.cost_usd));
  const outcome = a.running ? "running" : a.outcome;
  const output = el("pre", { class: "output", text: a.output_tail || (a.running ? "" : "(no output)") });
  if (a.running) output.id = "live-output";
  return el("section", { class: "attempt", "data-number": a.number, "data-outcome": outcome },
    el("div", { class: "attempt-head" },
      el("b", { text: `Attempt ${a.number}` }),
      el("span", { class: `pill ${a.running ? "run" : tone(a.outcome === "succeeded" ? "completed" : a.outcome === "cancelled" ? "cancelled" : "failed")}`, text: outcome }),
      a.error_class ? el("span", { class: "pill bad", text: a.error_class }) : null),
    el("dl", { class: "facts attempt-facts" },
      ...[
        ["Agent", a.agent || "–"],
        ["Model", a.model || "unknown"],
        ["Started", stamp(a.started_at)],
        [a.running ? "Running for" : "Took", duration(a.started_at, a.ended_at)],
        ["Usage", usage.join(" · ")],
      ].map(([name, value]) => el("div", {}, el("dt", { text: name }), el("dd", { text: value })))),
    a.error && !a.running ? el("pre", { class: "problem-text", text: a.error }) : null,
    el("div", { class: "attempt-label" }, a.running ? "Output (live)" : "Output (its end)"),
    output,
    a.diff !== null ? el("div", { class: "attempt-label" },
      `Diff merged${a.commit ? ` as ${a.commit.slice(0, 10)}` : ""}${a.diff_truncated ? " (cut at 200 kB)" : ""}`) : null,
    a.diff !== null ? diffView(a.diff) : null);
}

function diffView(text) {
  const lines = text.split("\n");
  const shown = lines.slice(0, 5000);
  const pre = el("pre", { class: "diff" }, shown.map((line) => {
    const kind = line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") ? "file"
      : line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "";
    return el("span", { class: kind }, `${line}\n`);
  }));
  if (lines.length > shown.length) pre.append(el("span", { class: "hunk" }, `… ${lines.length - shown.length} more lines`));
  return pre;
}

function setupPanel(id, current) {
  const dag = document.getElementById("dag");
  const open = (target) => {
    const card = target.closest(".node");
    const wf = current();
    if (!card || !wf) return;
    const subtask = wf.subtasks.find((s) => s.key === card.dataset.key);
    if (subtask) openPanel(id, subtask);
  };
  dag.addEventListener("click", (event) => open(event.target));
  dag.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") open(event.target); });
  document.getElementById("panel-close").addEventListener("click", closePanel);
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closePanel(); });
}

function workflowPage(id) {
  document.getElementById("workflow").hidden = false;
  document.getElementById("crumbs").replaceChildren(
    el("a", { href: "./", text: "Workflows" }), " / ", el("span", { class: "mono", text: id }));
  let latest = null;
  const refresh = throttle(async () => {
    latest = (await renderWorkflow(id).catch(console.error)) || latest;
    followPanel(latest);
  }, 200);
  refresh();
  follow(`?workflow_id=${encodeURIComponent(id)}`, refresh);
  setInterval(refresh, 4000);
  window.addEventListener("resize", debounce(() => latest && drawEdges(latest), 100));
  setupPanel(id, () => latest);
  document.getElementById("wf-cancel").addEventListener("click", async () => {
    if (!window.confirm("Cancel this workflow? Running subtasks stop; merged work stays.")) return;
    await api(`api/v1/workflows/${encodeURIComponent(id)}/cancel`, { method: "POST" }).catch((e) => alert(e.message));
    refresh();
  });
  document.getElementById("wf-approve").addEventListener("click", async (event) => {
    if (!window.confirm("Merge this workflow into its base branch now?")) return;
    event.target.disabled = true;
    await api(`api/v1/workflows/${encodeURIComponent(id)}/approve`, { method: "POST" }).catch((e) => alert(e.message));
    event.target.disabled = false;
    refresh();
  });
  document.getElementById("wf-reject").addEventListener("click", async () => {
    const reason = (window.prompt("Why is it rejected? (its branch is kept; nothing is merged)") || "").trim();
    if (!reason) return;
    await api(`api/v1/workflows/${encodeURIComponent(id)}/reject`, {
      method: "POST", body: JSON.stringify({ reason }),
    }).catch((e) => alert(e.message));
    refresh();
  });
}

// Where this page is below the dashboard's root (the <base> the server writes: "/" or a
// proxy's prefix such as "/taskorch/"): "" for the list, "workflows/<id>" for a workflow.
function pagePath() {
  const root = new URL(document.baseURI).pathname;
  const here = window.location.pathname;
  return here.startsWith(root) ? here.slice(root.length) : here.replace(/^\//, "");
}

/* --- start ----------------------------------------------------------------------------------- */

function start() {
  showHealth();
  setInterval(showHealth, 15000);
  const match = pagePath().match(/^workflows\/([^/]+)\/?$/);
  if (match) workflowPage(decodeURIComponent(match[1]));
  else home();
}

start();
