// Draws a dashboard from its data (tiles, charts, tables), offers each chart's data as
// CSV, and polls the page's data endpoint for fresher figures. Shared by every dashboard.
"use strict";
(function () {
  const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000", "#f0e442"];
  const STATE_ICON = { HEALTHY: "✓", DEGRADED: "▲", DOWN: "✕", UNKNOWN: "?" };
  const script = document.getElementById("page-data");
  const dataUrl = script.dataset.url;
  const pollMs = Number(script.dataset.pollSeconds) * 1000;
  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1, minimumFractionDigits: 1 });
  let data = JSON.parse(script.textContent);
  let updatedAt = Date.now();
  let failed = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  // Numbers with their units: 91.3 %, 12,257 ms, 1,234.
  function format(value, unit) {
    if (value === null || value === undefined) return "–";
    if (unit === "ratio") return decimal.format(value * 100) + " %";
    if (unit === "ms") return integer.format(value) + " ms";
    if (unit === "s") return decimal.format(value) + " s";
    return integer.format(value);
  }
  function insufficient(sample) {
    const n = sample === null || sample === undefined ? "" : ` (n = ${integer.format(sample)} < ${data.min_sample})`;
    return "Insufficient data" + n;
  }
  function when(iso) {
    if (!iso) return "–";
    return iso.replace("T", " ").replace(/:\d\d(\.\d+)?(?=[-+Z]|$)/, "").replace("+00:00", " UTC");
  }

  function sparkline(values) {
    const points = values.map((v, i) => [i, v]).filter(p => p[1] !== null);
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "spark"); svg.setAttribute("viewBox", "0 0 100 30");
    svg.setAttribute("preserveAspectRatio", "none"); svg.setAttribute("aria-hidden", "true");
    if (points.length > 1) {
      const ys = points.map(p => p[1]); const lo = Math.min(...ys), hi = Math.max(...ys);
      const span = hi - lo || 1, last = values.length - 1 || 1;
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", points.map(([i, v]) => `${(i / last) * 100},${28 - ((v - lo) / span) * 26}`).join(" "));
      line.setAttribute("fill", "none"); line.setAttribute("stroke", PALETTE[0]); line.setAttribute("stroke-width", "1.5");
      line.setAttribute("vector-effect", "non-scaling-stroke");
      svg.append(line);
    }
    return svg;
  }

  function tile(t) {
    const box = el("article", { class: "tile", id: `tile-${t.id}`, "data-status": t.status });
    box.append(el("h2", {}, t.label));
    if (t.value === null) {
      box.append(el("p", { class: "value insufficient" }, insufficient(t.sample_size)));
    } else {
      box.append(el("p", { class: "value" }, format(t.value, t.unit)));
    }
    if (t.change !== null) {
      const better = t.higher_is_better ? t.change > 0 : t.change < 0;
      const sign = t.change > 0 ? "▲ +" : t.change < 0 ? "▼ −" : "■ ";
      const size = t.unit === "ratio" ? decimal.format(Math.abs(t.change) * 100) + " pp" : format(Math.abs(t.change), t.unit);
      const verdict = t.change === 0 ? "no change" : better ? "better" : "worse";
      box.append(el("p", { class: "change " + (t.change === 0 ? "" : better ? "better" : "worse") },
        `${sign}${size} vs previous period (${verdict})`));
    } else {
      box.append(el("p", { class: "change" }, "No previous period to compare"));
    }
    if (t.spark.length) box.append(sparkline(t.spark));
    const list = el("dl");
    for (const d of t.detail) list.append(el("dt", {}, d.label), el("dd", {}, format(d.value, d.unit)));
    box.append(list);
    return box;
  }

  function csv(chart) {
    const quote = s => /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    const rows = [["x", ...chart.series.map(s => s.name)].map(quote).join(",")];
    chart.x.forEach((x, i) => rows.push([quote(String(x)), ...chart.series.map(s => s.values[i] === null ? "" : String(s.values[i]))].join(",")));
    return rows.join("\n") + "\n";
  }
  function download(chart) {
    const url = URL.createObjectURL(new Blob([csv(chart)], { type: "text/csv" }));
    const link = el("a", { href: url, download: `${chart.id}.csv` });
    document.body.append(link); link.click(); link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // plotly.js reads a trace's name, its categories and hover text as its own small HTML
  // (<b>, <br>, <a href>): data goes in as entities, which it shows as the text they are.
  function plotlyText(value) {
    return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  // plotly.js loads asynchronously: charts are drawn once it is there.
  function withPlotly(draw) {
    if (window.Plotly) draw(); else document.getElementById("plotly-js").addEventListener("load", draw, { once: true });
  }

  function drawChart(chart, node) {
    const plot = node.querySelector(".plot");
    const hasData = chart.series.some(s => s.values.some(v => v !== null && v !== 0));
    const sparse = chart.series.some(s => s.values.length) && chart.series.every(s => s.values.every(v => v === null));
    const empty = node.querySelector(".empty");
    empty.hidden = hasData;
    empty.textContent = sparse
      ? `Insufficient data: no point has the minimum sample of ${data.min_sample} attempts. Choose a longer range or fewer filters.`
      : "No events in this window for these filters.";
    plot.hidden = !hasData;
    if (!hasData || !window.Plotly) return;
    const scale = chart.unit === "ratio" ? 100 : 1;
    const suffix = chart.unit === "ratio" ? " %" : chart.unit === "ms" ? " ms" : "";
    const x = chart.x.map(v => typeof v === "string" ? plotlyText(v) : v);
    const traces = chart.series.map((s, i) => ({
      type: chart.kind === "bar" ? "bar" : "scatter", mode: "lines+markers", name: plotlyText(s.name), x,
      y: s.values.map(v => v === null ? null : v * scale), marker: { color: PALETTE[i % PALETTE.length] },
      line: { dash: ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"][i % 6] },
      // The trace's name is put in by plotly ("%{fullData.name}"), never spliced into the template.
      hovertemplate: `${chart.kind === "bar" ? "%{x}: " : ""}%{y:,.1f}${suffix}<extra>%{fullData.name}</extra>`,
      connectgaps: false,
    }));
    const layout = {
      margin: { l: 50, r: 10, t: 10, b: 40 }, barmode: chart.id.startsWith("errors") ? "stack" : "group",
      legend: { orientation: "h", y: -0.25 }, yaxis: { ticksuffix: suffix, rangemode: "tozero" },
      xaxis: { automargin: true },
      font: { family: "system-ui, sans-serif", size: 12 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
    };
    // A bar with too few events to stand is labelled so, not left empty (an empty bar reads as 0).
    if (chart.kind === "bar" && chart.unit === "ratio") {
      layout.annotations = x.filter((_, i) => chart.series.every(s => s.values[i] === null)).map(x => ({
        x, y: 0, text: "insufficient data", textangle: -90, yanchor: "bottom", showarrow: false,
        font: { color: "#6b6b6b", size: 11 },
      }));
    }
    window.Plotly.react(plot, traces, layout, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"] });
  }

  function charts(list) {
    const host = document.getElementById("charts");
    for (const chart of list) {
      let node = document.getElementById(`chart-${chart.id}`);
      if (!node) {
        const button = el("button", { type: "button", class: "csv", "aria-label": `Download the data of ${chart.title} as CSV` }, "CSV");
        node = el("figure", { class: "chart", id: `chart-${chart.id}` },
          el("figcaption", {}, el("span", {}, chart.title), button),
          el("div", { class: "plot", role: "img", "aria-label": chart.title }),
          el("p", { class: "empty" }, "No events in this window for these filters."));
        host.append(node);
        button.addEventListener("click", () => download(node.chartData));
      }
      node.chartData = chart;
    }
    withPlotly(() => {
      for (const chart of list) drawChart(chart, document.getElementById(`chart-${chart.id}`));
      // When the charts are drawn: read by the benchmark (benchmarks/web.py).
      if (!performance.getEntriesByName("ba:drawn").length) performance.mark("ba:drawn");
    });
  }

  function stateCell(state) {
    return el("td", { class: `state state-${state}` }, `${STATE_ICON[state] || ""} ${state}`);
  }
  function rateCell(value, status, sample) {
    if (status === "insufficient_data" || value === null) return el("td", { class: "num insufficient" }, insufficient(sample));
    return el("td", { class: "num" }, format(value, "ratio"));
  }

  let sortKey = "state", sortDir = 1, search = "";
  const STATE_ORDER = { DOWN: 0, DEGRADED: 1, UNKNOWN: 2, HEALTHY: 3 };
  function institutions(rows) {
    const table = document.getElementById("institutions");
    if (!table) return;
    const body = table.querySelector("tbody");
    const query = table.dataset.query;
    const wanted = rows.filter(r => !search || `${r.institution_name || ""} ${r.institution_id} ${r.aggregator} ${r.state}`.toLowerCase().includes(search));
    const key = r => sortKey === "state" ? STATE_ORDER[r.state]
      : sortKey === "institution" ? (r.institution_name || r.institution_id).toLowerCase() : r[sortKey];
    wanted.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === y) return a.institution_id < b.institution_id ? -1 : 1;
      if (x === null || x === undefined) return 1; if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sortDir;
    });
    body.replaceChildren(...wanted.map(r => el("tr", { "data-institution": r.institution_id },
      el("td", {}, el("a", { href: `${table.dataset.link}${encodeURIComponent(r.institution_id)}${query ? "?" + query : ""}` }, r.institution_name || r.institution_id),
        r.institution_name ? el("span", { class: "institution-id" }, ` ${r.institution_id}`) : ""),
      el("td", {}, r.aggregator), stateCell(r.state), el("td", {}, when(r.last_state_change)),
      rateCell(r.success_rate, r.status, r.sample_size),
      el("td", { class: "num" }, r.latency_p95_ms === null ? "–" : format(r.latency_p95_ms, "ms")),
      el("td", { class: "num" }, format(r.sample_size, "count")))));
  }
  function tables() {
    const table = document.getElementById("institutions");
    if (!table) return;
    for (const button of table.querySelectorAll("th button")) {
      button.addEventListener("click", () => {
        const key = button.dataset.sort;
        sortDir = key === sortKey ? -sortDir : 1; sortKey = key;
        for (const th of table.querySelectorAll("th")) th.removeAttribute("aria-sort");
        button.parentElement.setAttribute("aria-sort", sortDir === 1 ? "ascending" : "descending");
        institutions(data.institutions);
      });
    }
    document.getElementById("institution-search").addEventListener("input", e => {
      search = e.target.value.trim().toLowerCase(); institutions(data.institutions);
    });
  }

  function detailTables(d) {
    const products = document.getElementById("products");
    if (products) {
      products.querySelector("tbody").replaceChildren(...d.products.map(p => el("tr", {},
        el("td", {}, p.aggregator), el("td", {}, p.product), stateCell(p.state), el("td", {}, when(p.last_state_change)),
        // The health analysis gives a rate at any sample; below the minimum it is no figure.
        rateCell(p.window_success_rate, p.window_sample_size < d.min_sample ? "insufficient_data" : "ok", p.window_sample_size),
        el("td", { class: "num" }, format(p.window_sample_size, "count")))));
    }
    const failures = document.getElementById("failures");
    if (failures) {
      failures.querySelector("tbody").replaceChildren(...d.failures.map(f => el("tr", {},
        el("td", {}, when(f.occurred_at)), el("td", {}, f.aggregator), el("td", {}, f.feature),
        el("td", {}, f.error_category || "–"), el("td", {}, f.error_type || "–"), el("td", {}, el("code", {}, f.error_code || "–")),
        el("td", { class: "num" }, format(f.latency_ms, "ms")))));
    }
  }

  // The institution filter offers the catalogue's names (its value is the id).
  function institutionChoices(names) {
    const list = document.getElementById("institution-list");
    if (!list || !names) return;
    list.replaceChildren(...Object.entries(names).map(([id, name]) => el("option", { value: id, label: name })));
  }

  function render(d) {
    document.getElementById("window").textContent =
      `${when(d.window.start)} to ${when(d.window.end)} (${d.timezone} buckets of one ${d.bucket})`;
    document.getElementById("tiles").replaceChildren(...d.tiles.map(tile));
    charts(d.charts);
    if (d.institutions) institutions(d.institutions);
    institutionChoices(d.institution_names);
    detailTables(d);
  }

  function showStatus() {
    const age = Math.round((Date.now() - updatedAt) / 1000);
    const live = document.getElementById("live");
    const text = document.getElementById("live-text");
    const stale = failed !== null || Date.now() - updatedAt > 2.5 * pollMs;
    live.classList.toggle("stale", stale);
    text.textContent = stale
      ? `Stale: updated ${age} s ago${failed ? ` (${failed})` : ""}`
      : `Updated ${age} s ago`;
  }

  async function poll() {
    try {
      const response = await fetch(dataUrl + window.location.search, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.status === 401) { failed = "signed out: reload to sign in"; return; }
      if (!response.ok) { failed = `server answered ${response.status}`; return; }
      data = await response.json();
      updatedAt = Date.now(); failed = null;
      render(data);
    } catch (error) {
      failed = "no connection to the server";
    } finally {
      showStatus();
    }
  }

  function filterBar() {
    const form = document.getElementById("filters");
    const period = document.getElementById("f-period");
    const custom = document.getElementById("f-custom");
    period.addEventListener("change", () => {
      custom.hidden = period.value !== "custom";
      if (period.value !== "custom") form.requestSubmit();
    });
    for (const id of ["f-feature", "f-aggregator", "f-timezone"]) {
      document.getElementById(id).addEventListener("change", () => form.requestSubmit());
    }
    // Empty fields stay out of the URL: ?period=7d rather than ?period=7d&feature=&...
    form.addEventListener("formdata", e => {
      for (const [k, v] of [...e.formData.entries()]) if (v === "") e.formData.delete(k);
      if (e.formData.get("period") !== "custom") { e.formData.delete("start"); e.formData.delete("end"); }
    });
  }

  function start() {
    render(data);
    // When the tiles and tables are drawn: read by the benchmark (benchmarks/web.py).
    performance.mark("ba:tiles");
    tables();
    filterBar();
    setInterval(poll, pollMs);
    setInterval(showStatus, 1000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
