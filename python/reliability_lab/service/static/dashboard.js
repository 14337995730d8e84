// The control room's page: Plotly.js configuration, the Server-Sent Events stream and the
// control buttons. Every figure comes from the server; this file only hands them to Plotly.
"use strict";

const MAX_POINTS = 600;  // the server's history: five minutes at 2 Hz
const STATE_CODE = { closed: 0, half_open: 1, open: 2 };
const CONFIG = { displayModeBar: false, responsive: true };
const BASE_LAYOUT = {
  margin: { l: 50, r: 10, t: 28, b: 30 },
  legend: { orientation: "h", y: -0.18, font: { size: 10 } },
  xaxis: { title: { text: "" }, showgrid: true },
  font: { size: 11 },
  paper_bgcolor: "#fff",
  plot_bgcolor: "#fff",
};

// chart id -> [title, y axis options, [[snapshot field, trace name], ...]]
const LINE_CHARTS = {
  throughput: ["Orders per second", {}, [["arrivals_per_s", "arrivals"], ["goodput_per_s", "goodput"],
                                         ["offered_per_s", "offered rate"]]],
  success: ["Success rate", { range: [0, 1.05], tickformat: ".0%" }, [["success_rate", "success rate"]]],
  latency: ["Latency (ms)", { type: "log" }, [["p50_ms", "p50"], ["p99_ms", "p99"]]],
  load: ["Queue and workers", {}, [["queue_depth", "queue depth"], ["busy_workers", "busy workers"]]],
  amplification: ["Per ended order, and retry budgets", {}, [["calls_per_order", "dependency calls"], ["retries_per_order", "retries"]]],
};

const state = {
  deps: [], breakers: {}, t: [], series: {}, depfail: {}, bands: {}, budget: {}, annotations: [], rev: 0, lastSeq: 0,
};

function layout(title, yaxis) {
  return Object.assign({}, BASE_LAYOUT, {
    // The arrays grow in place: a new revision tells Plotly.react to redraw them.
    datarevision: state.rev,
    title: { text: title, font: { size: 13 }, x: 0.02 },
    yaxis: Object.assign({ rangemode: "tozero" }, yaxis),
    // Every chart shows the same time span, so that they line up.
    xaxis: Object.assign({}, BASE_LAYOUT.xaxis,
      state.t.length > 1 ? { range: [state.t[0], state.t[state.t.length - 1]] } : {}),
    shapes: state.annotations.map((a) => ({
      type: "line", xref: "x", yref: "paper", x0: a.t, x1: a.t, y0: 0, y1: 1,
      line: { color: "#1f4e9c", width: 1, dash: "dot" },
    })),
    annotations: state.annotations.map((a, i) => ({
      x: a.t, xref: "x", y: 1, yref: "paper", text: a.action, showarrow: false,
      yanchor: "bottom", xanchor: i % 2 ? "left" : "right",  // neighbours do not overprint
      font: { size: 9, color: "#1f4e9c" }, hovertext: a.text,
    })),
  });
}

function draw() {
  for (const [id, [title, yaxis, fields]] of Object.entries(LINE_CHARTS)) {
    const traces = fields
      .filter(([key]) => (state.series[key] || []).some((v) => v !== null))  // e.g. no offered rate
      .map(([key, name]) => ({
        x: state.t, y: state.series[key], name: name, mode: "lines", type: "scatter",
        line: key === "offered_per_s" ? { dash: "dash", color: "#888" } : undefined,
      }));
    const lay = layout(title, yaxis);
    if (id === "amplification") {
      // Token-bucket retry budgets, on a second axis (tokens left).
      for (const d of state.deps.filter((d) => state.budget[d].some((v) => v !== null))) {
        traces.push({
          x: state.t, y: state.budget[d], name: `${d} budget tokens`, mode: "lines",
          type: "scatter", yaxis: "y2", line: { dash: "dot" },
        });
      }
      if (traces.some((tr) => tr.yaxis === "y2")) {
        lay.yaxis2 = {
          overlaying: "y", side: "right", rangemode: "tozero", title: { text: "tokens" },
          tickmode: "auto", showgrid: false,
        };
        lay.margin = Object.assign({}, BASE_LAYOUT.margin, { r: 50 });
      }
    }
    Plotly.react(id, traces, lay, CONFIG);
  }
  const depTraces = state.deps.map((d) => ({
    x: state.t, y: state.depfail[d], name: d, mode: "lines", type: "scatter",
  }));
  Plotly.react("depfail", depTraces, layout("Dependency failure rate",
    { range: [0, 1.05], tickformat: ".0%" }), CONFIG);
  // Breaker state as coloured bands: one row per dependency, green closed, amber half-open,
  // red open.
  const bands = [{
    type: "heatmap", x: state.t, y: state.deps, z: state.deps.map((d) => state.bands[d]),
    zmin: 0, zmax: 2, showscale: false, hoverongaps: false,
    colorscale: [[0, "#2ca02c"], [0.33, "#2ca02c"], [0.34, "#f0ad1e"], [0.66, "#f0ad1e"],
                 [0.67, "#d62728"], [1, "#d62728"]],
  }];
  const bandLayout = layout("Breaker state (green closed, amber half-open, red open)", {});
  bandLayout.yaxis = { automargin: true };
  bandLayout.legend = undefined;
  Plotly.react("breakers", bands, bandLayout, CONFIG);
}

function addEvent(e) {
  if (e.seq <= state.lastSeq) return;  // already had it from the history
  state.lastSeq = e.seq;
  const li = document.createElement("li");
  li.className = "kind-" + e.kind;
  li.textContent = `${e.t.toFixed(1)} s  ${e.text}`;
  const list = document.getElementById("events");
  list.insertBefore(li, list.firstChild);
  while (list.childNodes.length > 200) list.removeChild(list.lastChild);
  if (e.annotate) state.annotations.push(e);
}

function push(s) {
  for (const e of s.events || []) addEvent(e);
  if (s.status) document.getElementById("status").textContent = `${s.status} · t = ${s.t.toFixed(1)} s`;
  if (s.breakers === undefined) return;  // not running: nothing measured
  state.rev++;
  state.t.push(s.t);
  for (const [, , fields] of Object.values(LINE_CHARTS)) {
    for (const [key] of fields) (state.series[key] = state.series[key] || []).push(s[key]);
  }
  for (const d of state.deps) {
    state.depfail[d].push((s.dependency_failure_rate || {})[d]);
    const tokens = (s.retry_budget_tokens || {})[d];
    state.budget[d].push(tokens === undefined ? null : tokens);
    const st = s.breakers[d];
    state.bands[d].push(st === null || st === undefined ? null : STATE_CODE[st]);
    const pill = document.getElementById("breaker-" + d);
    pill.dataset.state = st || "none";
    pill.textContent = `${d}: ${st ? st.replace("_", "-") : "no breaker"}`;
  }
  if (state.t.length > MAX_POINTS) {
    const cut = state.t.length - MAX_POINTS;
    state.t.splice(0, cut);
    for (const arr of Object.values(state.series)) arr.splice(0, cut);
    for (const d of state.deps) {
      state.depfail[d].splice(0, cut);
      state.bands[d].splice(0, cut);
      state.budget[d].splice(0, cut);
    }
    state.annotations = state.annotations.filter((a) => a.t >= state.t[0]);
  }
}

function start(history) {
  state.deps = history.dependencies;
  const select = document.getElementById("dependency");
  const pills = document.getElementById("pills");
  select.textContent = "";
  pills.textContent = "";
  // The controls reach every dependency, a service's own too ("<service>.<dependency>");
  // the charts draw the root's, which the engine's dependency families are labelled by.
  for (const d of history.controls || state.deps) select.add(new Option(d, d));
  for (const d of state.deps) {
    state.depfail[d] = [];
    state.bands[d] = [];
    state.budget[d] = [];
    const pill = document.createElement("span");
    pill.className = "pill";
    pill.id = "breaker-" + d;
    pill.dataset.state = "none";
    pill.textContent = d;
    pills.appendChild(pill);
  }
  // Only the engine's own load generator has an arrival rate to steer (not serve's clients).
  document.getElementById("arrival-controls").hidden = !history.actions.includes("arrival_rate");
  // The breaker knob: shown where a dependency has a breaker, filled with its parameters now.
  state.breakers = history.breakers || {};
  document.getElementById("breaker-controls").hidden = !history.actions.includes("breaker");
  fillBreaker();
  for (const e of history.events) addEvent(e);
  for (const s of history.snapshots) push(Object.assign({}, s, { events: [] }));
  draw();
}

function fillBreaker() {
  const b = state.breakers[document.getElementById("dependency").value];
  document.getElementById("breaker").disabled = !b;
  if (!b) return;
  document.getElementById("breaker-failures").value = b.consecutive_failures;
  document.getElementById("breaker-open-for").value = b.open_for;
}

function connect() {
  const source = new EventSource("dashboard/stream");
  window.rlabSource = source;
  source.addEventListener("history", (m) => start(JSON.parse(m.data)));
  source.addEventListener("snapshot", (m) => { push(JSON.parse(m.data)); draw(); window.rlabUpdates++; });
  source.addEventListener("end", (m) => {
    document.getElementById("status").textContent = JSON.parse(m.data).status;
    source.close();
  });
}

async function act(action) {
  const result = document.getElementById("result");
  const body = {
    action: action,
    dependency: document.getElementById("dependency").value,
    duration_s: Number(document.getElementById("duration").value),
  };
  if (action === "failure_rate") body.value = Number(document.getElementById("rate").value);
  if (action === "arrival_rate") body.value = Number(document.getElementById("arrivals").value);
  if (action === "breaker") {
    delete body.duration_s;
    body.breaker = {
      consecutive_failures: Number(document.getElementById("breaker-failures").value),
      open_for: Number(document.getElementById("breaker-open-for").value),
    };
  }
  const token = document.getElementById("token").value;
  sessionStorage.setItem("rlab-token", token);
  const r = await fetch("dashboard/actions", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
    body: JSON.stringify(body),
  });
  const answer = await r.json();
  result.className = r.ok ? "" : "error";
  result.textContent = r.ok ? answer.text : `${r.status}: ${answer.message}`;
  result.dataset.status = String(r.status);
  if (r.ok && action === "breaker") {  // what the next Set starts from
    Object.assign(state.breakers[body.dependency], body.breaker);
  }
}

window.rlabUpdates = 0;
window.rlabState = state;
// A token in the address's fragment (#token=...) fills the field: it never reaches the server.
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
document.getElementById("token").value = fromHash || sessionStorage.getItem("rlab-token") || "";
for (const b of document.querySelectorAll("button[data-action]")) {
  b.addEventListener("click", () => act(b.dataset.action).catch((e) => {
    const result = document.getElementById("result");
    result.className = "error";
    result.textContent = String(e);
  }));
}
document.getElementById("dependency").addEventListener("change", fillBreaker);
connect();
