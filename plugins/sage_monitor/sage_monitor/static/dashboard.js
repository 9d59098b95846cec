// The SAGE dashboard: polls /api/metrics (read-only) and redraws the graph, tables, panels and charts.
// Page parameters: ?interval=<ms> between polls (default 1000), ?job=<name> to pick a job.
"use strict";

const params = new URLSearchParams(location.search);
const POLL_MS = Math.max(200, Number(params.get("interval")) || 1000);
const HISTORY_S = 120;
const state = { job: params.get("job"), graphKey: null, history: {}, gpuHistory: {}, polls: 0 };

function el(tag, attrs, ...children) {
  const node = tag === "svg" || tag === "g" || tag === "rect" || tag === "text" || tag === "path" || tag === "title"
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value;  // CSSOM, allowed by the page's CSP
    else if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const fmt = (v, digits) => (v === null || v === undefined ? "-" : digits === undefined ? formatNumber(v) : Number(v).toFixed(digits));
const bytes = (v) => (v === null || v === undefined ? "-" : (v / 2 ** 30).toFixed(2) + " GiB");

async function poll() {
  try {
    const response = await fetch("/api/metrics", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    document.getElementById("connection").textContent = "";
  } catch (err) {
    document.getElementById("connection").textContent = `cannot read /api/metrics (${err.message}); retrying`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function render(snapshot) {
  state.polls += 1;
  document.body.dataset.polls = String(state.polls);
  document.getElementById("updated").textContent = new Date(snapshot.time * 1000).toLocaleTimeString();
  const jobs = snapshot.jobs || [];
  const select = document.getElementById("job-select");
  const names = jobs.map((j) => j.job);
  if (select.options.length !== names.length || names.some((n, i) => select.options[i].value !== n)) {
    select.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
  }
  if (!names.includes(state.job)) state.job = names.length ? names[names.length - 1] : null;
  select.value = state.job || "";
  select.onchange = () => { state.job = select.value; state.graphKey = null; };
  const job = jobs.find((j) => j.job === state.job);
  if (job) renderJob(job, snapshot.time);
  renderGpus((snapshot.collectors || {}).gpu || {}, snapshot.time);
  renderOthers(snapshot.collectors || {});
}

function renderOthers(collectors) {
  const others = Object.entries(collectors).filter(([name]) => name !== "gpu");
  document.getElementById("others-section").hidden = !others.length;
  document.getElementById("others").replaceChildren(...others.map(([name, figures]) =>
    el("div", { class: "panel", "data-collector": name }, el("h3", { text: name }), el("pre", { text: JSON.stringify(figures, null, 1) }))));
}

function renderJob(job, now) {
  const status = document.getElementById("job-status");
  status.textContent = job.status;
  status.className = `badge ${job.status}`;
  document.getElementById("job-elapsed").textContent = fmt(job.elapsed_s, 1);
  const history = (state.history[job.job] = state.history[job.job] || {});
  for (const [op, figures] of Object.entries(job.operators || {})) {
    const points = (history[op] = history[op] || []);
    points.push([now, figures.throughput || 0]);
    while (points.length && now - points[0][0] > HISTORY_S) points.shift();
  }
  renderGraph(job);
  renderOperators(job);
  drawLineChart(
    document.getElementById("throughput-chart"),
    Object.entries(history).map(([name, points]) => ({ name, points })),
    { unit: "/s" },
  );
  const queues = Object.entries(job.queues || {}).map(([task, depth]) => `${task}: ${depth}`);
  document.getElementById("queues").textContent = queues.length ? `batches waiting per task: ${queues.join(", ")}` : "";
  renderServices(job.services || {});
}

// ------------------------------------------------------------------ the physical graph

function renderGraph(job) {
  const graph = job.graph || { chains: [], channels: [] };
  const key = `${job.job}|${graph.chains.map((c) => c.id).join(",")}`;
  const holder = document.getElementById("graph");
  if (state.graphKey !== key) {
    holder.replaceChildren(buildGraph(graph));
    state.graphKey = key;
  }
  const depth = {};
  for (const [task, d] of Object.entries(job.queues || {})) {
    const chain = task.split("#")[0];
    depth[chain] = (depth[chain] || 0) + d;
  }
  for (const node of holder.querySelectorAll("text.rate")) {
    const op = (job.operators || {})[node.dataset.op];
    node.textContent = op ? `${formatNumber(op.throughput)} rec/s` : "";
  }
  for (const node of holder.querySelectorAll("text.queue")) {
    node.textContent = `queue ${depth[node.dataset.chain] || 0}`;
  }
}

function buildGraph(graph) {
  const layer = {};
  for (const chain of graph.chains) layer[chain.id] = 0;
  for (const chain of graph.chains) {  // chains arrive in topological order
    for (const ch of graph.channels) if (ch.target === chain.id) layer[chain.id] = Math.max(layer[chain.id], layer[ch.source] + 1);
  }
  const columns = {};
  for (const chain of graph.chains) (columns[layer[chain.id]] = columns[layer[chain.id]] || []).push(chain);
  const boxW = 230, lineH = 18, gapX = 90, gapY = 24, place = {};
  let height = 0;
  for (const [col, chains] of Object.entries(columns)) {
    let top = 10;
    for (const chain of chains) {
      const h = lineH * (chain.operators.length + 1) + 14;
      place[chain.id] = { x: 10 + Number(col) * (boxW + gapX), y: top, h };
      top += h + gapY;
    }
    height = Math.max(height, top);
  }
  const width = 20 + Object.keys(columns).length * (boxW + gapX) - gapX;
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "physical graph" });
  for (const ch of graph.channels) {
    const a = place[ch.source], b = place[ch.target];
    const x1 = a.x + boxW, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y + b.h / 2, mid = (x1 + x2) / 2;
    svg.append(el("g", { class: "edge" },
      el("path", { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 6},${y2} l-6,-4 m6,4 l-6,4` }),
      el("text", { x: mid - 28, y: (y1 + y2) / 2 - 4, text: ch.partitioning })));
  }
  for (const chain of graph.chains) {
    const p = place[chain.id];
    const group = el("g", { class: "chain", "data-chain": chain.id },
      el("rect", { x: p.x, y: p.y, width: boxW, height: p.h, rx: 6 }),
      el("text", { class: "head", x: p.x + 8, y: p.y + 16, text: `task ×${chain.parallelism}` }),
      el("text", { class: "queue", "data-chain": chain.id, x: p.x + boxW - 70, y: p.y + 16 }));
    chain.operators.forEach((op, i) => {
      const y = p.y + 16 + lineH * (i + 1);
      group.append(el("text", { x: p.x + 8, y, text: `${op.id}` }, el("title", { text: `${op.kind} ×${op.parallelism}` })));
      group.append(el("text", { class: "rate", "data-op": op.id, x: p.x + boxW - 8, y, "text-anchor": "end" }));
    });
    svg.append(group);
  }
  return svg;
}

// ------------------------------------------------------------------ operators

function renderOperators(job) {
  const body = document.querySelector("#operators tbody");
  const rows = Object.entries(job.operators || {}).map(([op, f]) => {
    const lat = f.latency_ms || {};
    const cells = [
      ["op", op], ["kind", f.kind], ["parallelism", f.parallelism], ["in", fmt(f.in)], ["out", fmt(f.out)],
      ["filtered", fmt(f.filtered)], ["failed", fmt(f.failed)], ["cancelled", fmt(f.cancelled)],
      ["throughput", fmt(f.throughput)],
      ["mean", fmt(lat.mean, 3)], ["p50", fmt(lat.p50, 3)], ["p95", fmt(lat.p95, 3)], ["p99", fmt(lat.p99, 3)],
    ];
    const flagged = { failed: f.failed ? "bad" : "", cancelled: f.cancelled ? "warn" : "" };
    return el("tr", { "data-op": op }, ...cells.map(([name, value]) =>
      el("td", { class: flagged[name] ? `${name} ${flagged[name]}` : name, text: String(value) })));
  });
  body.replaceChildren(...rows);
}

// ------------------------------------------------------------------ services

function renderServices(services) {
  const holder = document.getElementById("services");
  const panels = Object.entries(services).filter(([, f]) => f && typeof f === "object").map(([name, f]) => servicePanel(name, f));
  holder.replaceChildren(...(panels.length ? panels : [el("p", { class: "muted", text: "no service" })]));
}

function servicePanel(name, f) {
  const lat = f.latency_ms || {};
  const calls = f.calls || 0;
  const servedBy = Object.entries(f.served_by || {}).map(([backend, count]) =>
    el("div", { class: "served", "data-backend": backend, text: `${backend}: ${fmt(count)} (${calls ? Math.round((100 * count) / calls) : 0}%)` },
      el("div", { class: "bar" }, el("span", { style: `width:${calls ? (100 * count) / calls : 0}%` }))));
  const batches = Object.entries(f.batch || {}).map(([method, b]) =>
    el("div", { class: "batch", "data-method": method, text: `${method}: mean ${fmt(b.mean_rows, 1)}, max ${fmt(b.max_rows)} rows over ${fmt(b.batches)} batches` }));
  const replicas = [];
  for (const group of f.backends || []) {
    for (const r of group.replicas || []) {
      const restarted = r.restarts ? `, restarted ${r.restarts}×` : "";
      replicas.push(el("tr", {}, el("td", { text: group.backend }), el("td", { text: r.replica }),
        el("td", { class: r.restarts ? "warn" : null, title: r.error || null, text: r.state + (r.stale ? " (stale)" : "") + restarted }),
        el("td", { class: "load", text: fmt(r.in_flight) }), el("td", { text: fmt(r.served) }), el("td", { class: r.failed ? "bad" : "", text: fmt(r.failed) })));
    }
  }
  // backends that failed to start (skipped for the next fallback), with the reason the service logged
  const failures = (f.start_failures || []).map((failure) =>
    el("li", { class: "start-failure", "data-backend": failure.backend, "data-replica": failure.replica,
      text: `${failure.backend} (${failure.replica}): ${failure.reason}` }));
  const item = (label, value, cls) => [el("dt", { text: label }), el("dd", { class: cls || null, text: value })];
  return el("div", { class: "panel", "data-service": name },
    el("h3", { text: `${name} ` }, el("small", { class: "muted", text: `${f.kind || ""} · ${f.state || ""}` })),
    el("dl", {},
      ...item("calls", `${fmt(calls)} (${fmt(f.calls_per_s, 1)}/s)`, "calls"),
      ...item("errors / timeouts", `${fmt(f.errors)} / ${fmt(f.timeouts)}`, f.errors ? "bad" : null),
      ...item("fallback calls", fmt(f.fallback_calls), f.fallback_calls ? "warn fallbacks" : "fallbacks"),
      ...(f.restarts ? item("restarts", fmt(f.restarts), "warn restarts") : []),
      ...(failures.length ? item("start failures", fmt(failures.length), "warn start-failures") : []),
      ...item("in flight", fmt(f.in_flight)),
      ...item("latency ms", `p50 ${fmt(lat.p50, 2)} · p90 ${fmt(lat.p90, 2)} · p99 ${fmt(lat.p99, 2)}`)),
    failures.length ? el("h4", { text: "start failures (skipped for the next fallback)" }) : null,
    failures.length ? el("ul", { class: "start-failures" }, ...failures) : null,
    el("h4", { text: "served by" }), ...servedBy,
    batches.length ? el("h4", { text: "batch sizes" }) : null, ...batches,
    replicas.length ? el("table", { class: "replicas" },
      el("thead", {}, el("tr", {}, ...["backend", "replica", "state", "in flight", "served", "failed"].map((h) => el("th", { text: h })))),
      el("tbody", {}, ...replicas)) : null);
}

// ------------------------------------------------------------------ GPUs

function renderGpus(gpu, now) {
  const holder = document.getElementById("gpus");
  if (!gpu.available) {
    holder.replaceChildren(el("p", { class: "muted no-gpu", text: `No GPU: ${gpu.reason || gpu.error || "no GPU collector installed"}` }));
    return;
  }
  const panels = (gpu.gpus || []).map((card) => {
    const points = (state.gpuHistory[card.index] = state.gpuHistory[card.index] || { util: [], mem: [] });
    points.util.push([now, card.utilization_gpu_pct || 0]);
    const memPct = card.memory_total_bytes ? (100 * card.memory_used_bytes) / card.memory_total_bytes : 0;
    points.mem.push([now, memPct]);
    for (const list of [points.util, points.mem]) while (list.length && now - list[0][0] > HISTORY_S) list.shift();
    const canvas = el("canvas", { class: "chart", width: 420, height: 140 });
    const processes = (card.processes || []).map((p) => el("li", { text: `${p.name} [${p.pid}] ${p.memory_used_bytes == null ? "?" : bytes(p.memory_used_bytes)}` }));
    const panel = el("div", { class: "panel", "data-gpu": String(card.index) },
      el("h3", { text: `GPU ${card.index} ` }, el("small", { class: "muted", text: card.name || "" })),
      el("dl", {},
        el("dt", { text: "utilisation" }), el("dd", { class: "util", text: `${fmt(card.utilization_gpu_pct)} %` }),
        el("dt", { text: "memory" }), el("dd", { class: "memory", text: `${bytes(card.memory_used_bytes)} / ${bytes(card.memory_total_bytes)}` }),
        el("dt", { text: "temperature" }), el("dd", { text: `${fmt(card.temperature_c)} °C` }),
        el("dt", { text: "power" }), el("dd", { text: `${fmt(card.power_w, 0)} / ${fmt(card.power_limit_w, 0)} W` }),
        el("dt", { text: "SM clock" }), el("dd", { text: `${fmt(card.sm_clock_mhz)} / ${fmt(card.sm_clock_max_mhz)} MHz` })),
      el("div", { class: "bar" }, el("span", { style: `width:${memPct}%` })),
      canvas,
      processes.length ? el("ul", { class: "processes" }, ...processes) : el("p", { class: "muted", text: "no process holds GPU memory" }));
    return [panel, canvas, points];
  });
  holder.replaceChildren(...panels.map(([panel]) => panel));
  for (const [, canvas, points] of panels) {
    drawLineChart(canvas, [{ name: "utilisation %", points: points.util }, { name: "memory %", points: points.mem }], { max: 100 });
  }
}

poll();
