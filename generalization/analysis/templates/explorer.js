// Glue for the results explorer: reads the embedded JSON, draws with plotly.js, filters, searches, sorts.
// Names from the data go into the page only as text (textContent) or HTML-escaped (plotly's labels).
(function () {
  "use strict";
  const T0 = performance.now();
  const D = JSON.parse(document.getElementById("explorer-data").textContent);
  const A = D.acc;
  const TIMES = {script_start: T0, data_parsed: performance.now()};
  // undo the compact encoding (see explorer_data): test set and n per row, absolute row indices
  A.t = new Int32Array(A.m.length);
  D.test_sets.forEach((t, j) => A.t.fill(j, t.start, t.start + t.count));
  if (!A.n) A.n = Array.from(A.t, (j) => D.test_sets[j].n);
  if (!A.f) A.f = new Int32Array(A.m.length);
  if (!A.mt) A.mt = new Int32Array(A.m.length).fill(-1);
  function undelta(d) {
    let prev = 0;
    return d.map((v) => (v === null ? -1 : (prev += v)));
  }
  for (const p of D.pairs) { p.rows.a = undelta(p.rows.a); p.rows.b = undelta(p.rows.b); }
  const byId = (id) => document.getElementById(id);
  const gd = byId("plot");

  // ------------------------------------------------------------------------------------- scales
  // Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9)
  const PA = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
    -3.066479806614716e+01, 2.506628277459239e+00];
  const PB = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
    -1.328068155288572e+01];
  const PC = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
    4.374664141464968e+00, 2.938163982698783e+00];
  const PD = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00];
  function probit(p) {
    if (p < 0.02425) {
      const q = Math.sqrt(-2 * Math.log(p));
      return (((((PC[0] * q + PC[1]) * q + PC[2]) * q + PC[3]) * q + PC[4]) * q + PC[5]) /
        ((((PD[0] * q + PD[1]) * q + PD[2]) * q + PD[3]) * q + 1);
    }
    if (p > 1 - 0.02425) return -probit(1 - p);
    const q = p - 0.5, r = q * q;
    return (((((PA[0] * r + PA[1]) * r + PA[2]) * r + PA[3]) * r + PA[4]) * r + PA[5]) * q /
      (((((PB[0] * r + PB[1]) * r + PB[2]) * r + PB[3]) * r + PB[4]) * r + 1);
  }
  // percent -> the scale's coordinate; 0 and 100 % move half a count inwards (as the fits do)
  function tr(pct, scale, n) {
    if (pct === null || pct === undefined) return null;
    if (scale === "linear") return pct;
    const eps = n ? 0.5 / n : 1e-9;
    const p = Math.min(Math.max(pct / 100, eps), 1 - eps);
    return scale === "probit" ? probit(p) : Math.log(p / (1 - p));
  }
  const TICKS = [0.1, 0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9];

  // ------------------------------------------------------------------------------------- helpers
  // for plotly's labels, which read a little HTML: numeric entities for quotes (plotly decodes no &quot;)
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&#34;").replace(/'/g, "&#39;");
  const fmt = (v, d) => (v === null || v === undefined || Number.isNaN(v)) ? "" : v.toFixed(d);
  const ci = (v, lo, hi, d) => v === null || v === undefined ? "" :
    fmt(v, d) + (lo === null || lo === undefined ? "" : " [" + fmt(lo, 2) + ", " + fmt(hi, 2) + "]");
  const signed = (v) => v === null || v === undefined ? "" : (v > 0 ? "+" : "") + v.toFixed(2);
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f"];

  // ------------------------------------------------------------------------------------- state
  const S = {
    pair: 0, scale: "linear", sources: new Set(D.sources), types: new Set(D.types.concat([""])),
    lo: 0, hi: 100, query: "", sort: {key: "orig", dir: -1}, bars: null,
  };
  const BARS = 600;
  const cache = new Map();

  function rowsOf(pi) {
    if (cache.has(pi)) return cache.get(pi);
    const R = D.pairs[pi].rows, get = (k, i) => (R[k] ? R[k][i] : null);
    const rows = R.a.map((a, i) => {
      const b = R.b[i], has = b >= 0;
      const flags = [D.flags[A.f[a]], has ? D.flags[A.f[b]] : ""].filter((f) => f);
      const r = {
        name: D.names[A.m[a]], source: D.sources[A.s[a]], type: A.mt[a] >= 0 ? D.types[A.mt[a]] : "",
        orig: A.top1[a], olo: A.lo[a], ohi: A.hi[a], no: A.n[a],
        nw: has ? A.top1[b] : null, nlo: has ? A.lo[b] : null, nhi: has ? A.hi[b] : null, nn: has ? A.n[b] : null,
        gl: get("gl", i), gh: get("gh", i), er: get("er", i), p: get("p", i), pl: get("pl", i), ph: get("ph", i),
        x: get("x", i) === 1, flagged: flags.length > 0,
      };
      r.gap = has ? r.orig - r.nw : null;
      r.flags = flags.concat(r.x ? ["extrapolated"] : [], has ? [] : ["no new accuracy"]).join("; ");
      r.key = r.name.toLowerCase();
      return r;
    });
    const nNew = rows.find((r) => r.nn) ? rows.find((r) => r.nn).nn : null;
    const out = {rows, nNew};
    cache.set(pi, out);
    return out;
  }
  const visible = (r) => S.sources.has(r.source) && S.types.has(r.type) && r.orig >= S.lo && r.orig <= S.hi;
  const matches = (r) => S.query !== "" && r.key.includes(S.query);

  // ------------------------------------------------------------------------------------- plot
  function hover(r) {
    const lines = ["<b>" + esc(r.name) + "</b>", "source: " + esc(r.source) + (r.type ? ", type: " + esc(r.type) : ""),
      "original: " + esc(ci(r.orig, r.olo, r.ohi, 2)) + " %"];
    if (r.nw !== null) lines.push("new: " + esc(ci(r.nw, r.nlo, r.nhi, 2)) + " %", "gap: " + esc(ci(r.gap, r.gl, r.gh, 2)));
    if (r.er !== null) lines.push("effective robustness: " + esc(signed(r.er)) + " points");
    if (r.p !== null) lines.push("predicted: " + esc(ci(r.p, r.pl, r.ph, 2)) + " %");
    if (r.flags) lines.push("flags: " + esc(r.flags));
    return lines.join("<br>");
  }
  // the points of one group and, with `bars`, their 95 % intervals as line segments (one trace per group)
  function pointTraces(rows, name, marker, sc, predicted, bars) {
    const X = rows.map((r) => tr(r.orig, sc, r.no));
    const Y = rows.map((r) => predicted ? tr(r.p, sc, r.nn) : tr(r.nw, sc, r.nn));
    const col = marker.line ? marker.line.color : marker.color;
    const bx = [], by = [];
    if (bars) rows.forEach((r, i) => {
      const ylo = predicted ? tr(r.pl, sc, r.nn) : tr(r.nlo, sc, r.nn);
      const yhi = predicted ? tr(r.ph, sc, r.nn) : tr(r.nhi, sc, r.nn);
      if (r.olo !== null) bx.push(tr(r.olo, sc, r.no), tr(r.ohi, sc, r.no), null), by.push(Y[i], Y[i], null);
      if (ylo !== null) bx.push(X[i], X[i], null), by.push(ylo, yhi, null);
    });
    return [
      {type: "scatter", mode: "lines", x: bx, y: by, legendgroup: name, showlegend: false, hoverinfo: "skip",
        line: {color: col, width: 0.8}, opacity: 0.55, meta: "intervals"},
      {type: "scatter", mode: "markers", name: name, legendgroup: name, x: X, y: Y, hovertext: rows.map(hover),
        hoverinfo: "text", customdata: rows.map((r) => r.name), marker: marker},
    ];
  }
  function axis(title, sc, lo, hi) {
    const ax = {title: {text: esc(title) + (sc === "linear" ? "" : " (" + sc + " scale)")}, zeroline: false,
      gridcolor: "#e6e6e6", range: [lo, hi]};
    if (sc !== "linear") {
      ax.tickvals = TICKS.map((t) => tr(t, sc));
      ax.ticktext = TICKS.map((t) => String(t));
    }
    return ax;
  }

  function traces() {
    const P = D.pairs[S.pair], {rows, nNew} = rowsOf(S.pair), sc = S.scale, out = [];
    const vis = rows.filter(visible);
    // the prediction interval at each model's original accuracy (per_model.csv), drawn as a region
    const pi = rows.filter((r) => r.pl !== null && r.ph !== null).sort((a, b) => a.orig - b.orig);
    if (pi.length > 1) {
      out.push({type: "scatter", mode: "lines", name: P.prediction_label, hoverinfo: "skip", fill: "toself",
        fillcolor: "rgba(255,150,40,0.16)", line: {width: 0},
        x: pi.map((r) => tr(r.orig, sc, r.no)).concat(pi.map((r) => tr(r.orig, sc, r.no)).reverse()),
        y: pi.map((r) => tr(r.pl, sc, nNew)).concat(pi.map((r) => tr(r.ph, sc, nNew)).reverse())});
    }
    (P.fits[sc] || []).forEach((f, k) => {
      const label = "trend" + (f.model_set ? " (" + f.model_set + ")" : "");
      if (f.band) {
        out.push({type: "scatter", mode: "lines", name: (f.band_level ? Math.round(100 * f.band_level) + " % " : "") +
          "bootstrap band of the trend", hoverinfo: "skip", fill: "toself", fillcolor: "rgba(60,60,60,0.15)",
          line: {width: 0}, x: f.band.x.concat(f.band.x.slice().reverse()).map((v) => tr(v, sc)),
          y: f.band.low.concat(f.band.high.slice().reverse()).map((v) => tr(v, sc))});
      }
      out.push({type: "scatter", mode: "lines", name: esc(label), line: {color: "#222", width: 1.6, dash: k ? "dash" : "solid"},
        x: f.line.x.map((v) => tr(v, sc)), y: f.line.y.map((v) => tr(v, sc)),
        hovertemplate: esc(label) + ": %{y:.3f} at %{x:.3f}<extra></extra>"});
    });
    // y = x over the axes' range
    const xs = [], ys = [];
    for (const r of rows) {
      xs.push(tr(r.orig, sc, r.no));
      const y = r.nw !== null ? tr(r.nw, sc, r.nn) : (r.p !== null ? tr(r.p, sc, nNew) : null);
      if (y !== null) ys.push(y);
    }
    const all = xs.concat(ys), lo = Math.min(...all), hi = Math.max(...all), pad = 0.04 * (hi - lo || 1);
    const xlo = Math.min(...xs) - pad, xhi = Math.max(...xs) + pad;
    const ylo = Math.min(...ys, xlo) - pad, yhi = Math.max(...ys, ...xs) + pad;
    out.push({type: "scatter", mode: "lines", name: "y = x", line: {color: "#888", width: 1, dash: "dot"},
      x: [lo - pad, hi + pad], y: [lo - pad, hi + pad], hoverinfo: "skip"});
    // drawing a thousand interval bars takes longer than everything else: by default only up to BARS points
    const bars = S.bars === null ? vis.length <= BARS : S.bars;
    byId("show-intervals").checked = bars;
    // points: coloured by model type when the table has types, otherwise by source
    const byType = D.types.length > 0, groups = byType ? D.types.concat([""]) : D.sources;
    groups.forEach((g, k) => {
      const rs = vis.filter((r) => (byType ? r.type : r.source) === g && r.nw !== null && !r.flagged);
      if (rs.length) {
        out.push(...pointTraces(rs, esc(g || "type unknown"), {color: COLORS[k % COLORS.length], size: 7, opacity: 0.85}, sc, false, bars));
      }
    });
    const pred = vis.filter((r) => r.nw === null && r.p !== null && !r.flagged);
    if (pred.length) {
      out.push(...pointTraces(pred, "predicted (no new accuracy)",
        {color: "rgba(0,0,0,0)", size: 7, line: {color: "#ff7f0e", width: 1.4}}, sc, true, bars));
    }
    const flagged = vis.filter((r) => r.flagged && r.nw !== null);
    if (flagged.length) {
      out.push(...pointTraces(flagged, "flagged (not fitted)", {color: "#999", symbol: "x", size: 8}, sc, false, bars));
    }
    // the searched models, drawn on top whatever the filters
    const hits = rows.filter((r) => matches(r) && (r.nw !== null || r.p !== null));
    if (hits.length) {
      const t = pointTraces(hits, "search: " + esc(S.query), {color: "rgba(0,0,0,0)", size: 17,
        line: {color: "#e00000", width: 3}}, sc, false)[1];
      t.y = hits.map((r) => (r.nw !== null ? tr(r.nw, sc, r.nn) : tr(r.p, sc, r.nn)));
      if (hits.length <= 3) { t.mode = "markers+text"; t.text = hits.map((r) => esc(r.name)); t.textposition = "top center"; }
      t.meta = "search";
      out.push(t);
    }
    const layout = {
      margin: {l: 70, r: 20, t: 40, b: 60}, hovermode: "closest", uirevision: S.pair + S.scale,
      title: {text: esc(P.title) + " (top-1)", font: {size: 15}},
      xaxis: axis(P.original_title + " top-1 accuracy (%)", sc, xlo, xhi),
      yaxis: axis(P.new_title + " top-1 accuracy (%)", sc, ylo, yhi),
      legend: {x: 1.01, xanchor: "left", y: 1, yanchor: "top", font: {size: 12}},
    };
    return {data: out, layout, nVisible: vis.length, nAll: rows.length};
  }

  // ------------------------------------------------------------------------------------- table
  const has = (k) => D.pairs.some((p) => p.rows[k]);
  const COLUMNS = [
    {key: "name", label: "model", text: true, cell: (r) => r.name},
    {key: "source", label: "source", text: true, cell: (r) => r.source},
  ].concat(D.types.length ? [{key: "type", label: "model type", text: true, cell: (r) => r.type}] : [], [
    {key: "orig", label: "original % [95 % CI]", cell: (r) => ci(r.orig, r.olo, r.ohi, 2)},
    {key: "nw", label: "new % [95 % CI]", cell: (r) => ci(r.nw, r.nlo, r.nhi, 2)},
    {key: "gap", label: "gap, points [95 % CI]", cell: (r) => ci(r.gap, r.gl, r.gh, 2)},
  ], has("er") ? [{key: "er", label: "effective robustness", cell: (r) => signed(r.er)}] : [],
  has("p") ? [{key: "p", label: "predicted new % [interval]", cell: (r) => ci(r.p, r.pl, r.ph, 2)}] : [],
  [{key: "flags", label: "flags", text: true, cell: (r) => r.flags}]);

  function sortRows(rows) {
    const {key, dir} = S.sort, col = COLUMNS.find((c) => c.key === key);
    return rows.slice().sort((a, b) => {
      const x = a[key], y = b[key];
      if (x === null || x === "") return (y === null || y === "") ? 0 : 1;  // empty cells last
      if (y === null || y === "") return -1;
      const c = col && col.text ? String(x).localeCompare(String(y)) : x - y;
      return c !== 0 ? dir * c : a.name.localeCompare(b.name);
    });
  }
  function renderHead() {
    const tr0 = document.querySelector("#models thead tr");
    tr0.replaceChildren(...COLUMNS.map((c) => {
      const th = el("th", {"data-key": c.key, class: c.text ? "text" : "", scope: "col"}, c.label);
      if (S.sort.key === c.key) th.setAttribute("aria-sort", S.sort.dir > 0 ? "ascending" : "descending");
      th.addEventListener("click", () => {
        S.sort = {key: c.key, dir: S.sort.key === c.key ? -S.sort.dir : (c.text ? 1 : -1)};
        renderHead(); renderTable();
      });
      return th;
    }));
  }
  const PAGE = 250;  // rows drawn at first; "show all" draws the rest (a long table is slow to lay out)
  let tableLimit = PAGE;
  function renderTable() {
    const {rows} = rowsOf(S.pair);
    const shown = sortRows(rows.filter((r) => (S.query ? matches(r) : visible(r))));
    const body = document.querySelector("#models tbody");
    body.replaceChildren(...shown.slice(0, tableLimit).map((r) => {
      const row = el("tr", matches(r) ? {class: "hit"} : {});
      row.dataset.model = r.name;
      for (const c of COLUMNS) row.appendChild(el("td", c.text ? {class: "text"} : {}, c.cell(r)));
      return row;
    }));
    const note = byId("table-note");
    note.textContent = (S.query
      ? shown.length + " of " + rows.length + " models match \u201c" + S.query + "\u201d (filters ignored while searching)"
      : shown.length + " of " + rows.length + " models pass the filters") + "; click a header to sort. ";
    if (shown.length > tableLimit) {
      const more = el("button", {type: "button", id: "show-all"}, "show all " + shown.length + " rows");
      more.addEventListener("click", () => { tableLimit = Infinity; renderTable(); });
      note.append("Showing the first " + tableLimit + ". ", more);
    }
  }

  // ------------------------------------------------------------------------------------- search panel
  let modelRows = null;
  function renderSearch() {
    const box = byId("search-results");
    if (!S.query) { box.replaceChildren(); return; }
    if (!modelRows) {
      modelRows = new Map();
      A.m.forEach((m, i) => { if (!modelRows.has(m)) modelRows.set(m, []); modelRows.get(m).push(i); });
    }
    const found = [];
    D.names.forEach((n, m) => { if (n.toLowerCase().includes(S.query)) found.push(m); });
    // the exact name first, then names starting with the query: a short name is never lost among longer ones
    const rank = (m) => (D.names[m].toLowerCase() === S.query ? 0 : D.names[m].toLowerCase().startsWith(S.query) ? 1 : 2);
    found.sort((x, y) => rank(x) - rank(y) || x - y);
    const head = el("div", {}, found.length ? found.length + " model" + (found.length > 1 ? "s" : "") +
      " match; everywhere they were measured:" : "No model name contains \u201c" + S.query + "\u201d.");
    const list = el("ul");
    for (const m of found.slice(0, 12)) {
      const li = el("li");
      li.appendChild(el("b", {}, D.names[m]));
      const parts = modelRows.get(m).map((i) => D.test_sets[A.t[i]].title + " " + fmt(A.top1[i], 2) + " % (" +
        D.sources[A.s[i]] + ")");
      li.appendChild(document.createTextNode(": " + parts.join(", ") + " "));
      D.pairs.forEach((p, pi) => {
        if (pi !== S.pair && p.rows.a.some((a) => A.m[a] === m)) {
          const b = el("button", {type: "button", title: "show " + p.title}, p.title);
          b.addEventListener("click", () => selectPair(pi));
          li.appendChild(b);
        }
      });
      list.appendChild(li);
    }
    if (found.length > 12) list.appendChild(el("li", {}, "\u2026 and " + (found.length - 12) + " more"));
    box.replaceChildren(head, list);
  }

  // ------------------------------------------------------------------------------------- wiring
  function summary() {
    const P = D.pairs[S.pair], fits = P.fits[S.scale] || [], box = byId("fit-summary");
    box.replaceChildren();
    if (!fits.length) { box.textContent = "No trend fitted for this pair on the " + S.scale + " scale."; return; }
    for (const f of fits) {
      const who = f.model_set || f.fit_sources || "";
      let s = "Trend (" + S.scale + " scale): new = " + f.intercept.toFixed(3) + " + " + f.slope.toFixed(3) +
        " \u00d7 original" + (S.scale === "linear" ? " (percent)" : " (" + S.scale + "-transformed fractions)");
      if (f.slope_ci_low !== undefined) {
        s += ", slope " + (f.band_level ? Math.round(100 * f.band_level) + " % " : "") + "bootstrap interval [" +
          f.slope_ci_low.toFixed(3) + ", " + f.slope_ci_high.toFixed(3) + "]";
      }
      if (f.n_models !== undefined) s += "; fitted on " + f.n_models + " models" + (who ? " (" + who + ")" : "");
      if (f.r !== undefined) s += "; r = " + f.r.toFixed(4);
      box.appendChild(el("span", {}, s + ". "));
    }
    if (D.report_link) {
      const a = el("a", {href: D.report_link}, "The numbers in REPORT.md");
      box.appendChild(a);
    }
  }
  let drawn = false;
  function render() {
    if (!D.pairs.length) { byId("plot-note").textContent = "No test-set pair to show."; return Promise.resolve(); }
    const t = traces();
    byId("plot-note").textContent = t.nVisible + " of " + t.nAll + " models pass the filters. " +
      (byId("show-intervals").checked ? "Bars: 95 % Clopper-Pearson intervals of both accuracies (of the prediction " +
      "for hollow points). " : "Intervals not drawn (tick \u201c95 % intervals\u201d); ") +
      "Hover a point for its numbers and intervals.";
    summary(); renderSearch();
    TIMES.traces = TIMES.traces || performance.now();
    const plotted = drawn ? Plotly.react(gd, t.data, t.layout) : Plotly.newPlot(gd, t.data, t.layout,
      {responsive: true, displaylogo: false, showLink: false, toImageButtonOptions: {format: "png", scale: 2}});
    drawn = true;
    // the table after the plot: plotly measures text while drawing, and every measurement would lay out a
    // table of a thousand rows again
    return Promise.resolve(plotted).then(() => {
      TIMES.plot = TIMES.plot || performance.now();
      renderTable();
    });
  }
  function selectPair(pi) {
    S.pair = pi;
    tableLimit = PAGE;
    document.querySelectorAll("#tabs [role=tab]").forEach((b, i) => b.setAttribute("aria-selected", String(i === pi)));
    render();
  }

  D.pairs.forEach((p, pi) => {
    const b = el("button", {type: "button", role: "tab", "aria-selected": String(pi === 0), "data-pair": pi}, p.title);
    b.addEventListener("click", () => selectPair(pi));
    byId("tabs").appendChild(b);
  });
  document.querySelectorAll("input[name=scale]").forEach((i) => i.addEventListener("change", () => {
    S.scale = i.value; render();
  }));
  function checkboxes(box, values, set, label) {
    values.forEach((v) => {
      const l = el("label"), c = el("input", {type: "checkbox"});
      c.checked = true; c.value = v;
      c.addEventListener("change", () => { if (c.checked) set.add(v); else set.delete(v); render(); });
      l.append(c, document.createTextNode(" " + label(v)));
      box.appendChild(l);
    });
  }
  checkboxes(byId("source-filter"), D.sources, S.sources, (v) => v);
  if (D.types.length) {
    byId("type-filter").hidden = false;
    checkboxes(byId("type-filter"), D.types.concat(A.mt.some((t) => t < 0) ? [""] : []), S.types, (v) => v || "unknown");
  }
  const range = () => {
    const lo = parseFloat(byId("acc-min").value), hi = parseFloat(byId("acc-max").value);
    S.lo = Number.isFinite(lo) ? lo : 0; S.hi = Number.isFinite(hi) ? hi : 100; render();
  };
  byId("show-intervals").addEventListener("change", (e) => { S.bars = e.target.checked; render(); });
  // typing redraws once it pauses (a redraw of a thousand points takes a moment)
  let typing = null;
  const later = (f) => { clearTimeout(typing); typing = setTimeout(f, 120); };
  byId("acc-min").addEventListener("input", () => later(range));
  byId("acc-max").addEventListener("input", () => later(range));
  byId("search").addEventListener("input", (e) => later(() => { S.query = e.target.value.trim().toLowerCase(); render(); }));
  // the name list for the search box's suggestions, made when first needed
  byId("search").addEventListener("focus", () => {
    const dl = byId("model-names");
    if (!dl.childElementCount) dl.replaceChildren(...D.names.map((n) => el("option", {value: n})));
  });

  renderHead();
  render().then(() => {
    TIMES.ready = window.explorerReadyMs = performance.now();
    window.explorerTimings = TIMES;
    window.explorerReady = true;
    document.body.dataset.ready = "1";
  });
  // for tests and the curious: the transform the page uses, and its state
  window.explorer = {probit, transform: tr, state: S, data: D};
})();
