/* syslogkit web: the page's script.
 *
 * Rule: everything a sender controls (host, app, message, structured data, raw bytes, errors)
 * reaches the document through text nodes (el() and textContent) only; this file never writes
 * HTML. The whole view lives in the URL, so it can be bookmarked and shared.
 */
"use strict";

(function () {
  const SEVERITIES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];
  const FACILITIES = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp",
    "cron", "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
    "local3", "local4", "local5", "local6", "local7"];
  const COLOURS = ["#6a1b9a", "#b71c1c", "#d32f2f", "#f4511e", "#fb8c00", "#1e88e5", "#43a047",
    "#9e9e9e", "#546e7a"];
  const MAX_ROWS = 2000;
  const $ = (id) => document.getElementById(id);

  let generation = 0;       // bumps on every new view: late answers of an old one are dropped
  let nextBefore = null;
  let events = null;
  let pending = [];         // live records that arrived while the reader was scrolled away
  let arrivals = [];        // arrival times (ms) of live records, for the rate
  let chart = null;

  /* -- DOM helpers (text only) ------------------------------------------------------------- */

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  /** Characters that hide or reorder text made visible as escapes: C0 and C1 controls (\n,
   * \t, \x1b ...: terminal escapes show as text), bidirectional controls (U+202E would show
   * "user=\u202etoor" as "user=root"), zero-width and invisible characters, line separators. */
  const HIDDEN = new RegExp("[\\x00-\\x1f\\x7f-\\x9f\\xad\\u061c\\u115f\\u1160\\u180e" +
    "\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0" +
    "\\ufff9-\\ufffb]", "g");

  function visible(text, keepNewlines) {
    return String(text).replace(HIDDEN, (c) => {
      if (c === "\n") return keepNewlines ? "\n" : "\\n";
      if (c === "\t") return keepNewlines ? "\t" : "\\t";
      if (c === "\r") return "\\r";
      const code = c.charCodeAt(0);
      return code < 0x100 ? "\\x" + code.toString(16).padStart(2, "0")
        : "\\u" + code.toString(16).padStart(4, "0");
    });
  }

  function pad(n, width) { return String(n).padStart(width || 2, "0"); }

  function formatTime(epoch) {
    const d = new Date(epoch * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." +
      pad(d.getMilliseconds(), 3);
  }

  function toLocalInput(epoch) {
    const d = new Date(epoch * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  /** A clock skew (seconds from the message's time to its arrival) in words. */
  function skewText(seconds) {
    const a = Math.abs(seconds);
    const amount = a < 7200 ? Math.round(a / 60) + " min" : a < 2 * 86400 ? Math.round(a / 3600) + " h"
      : a < 730 * 86400 ? Math.round(a / 86400) + " d" : Math.round(a / (365.25 * 86400)) + " y";
    return "clock skew: timestamp " + amount + (seconds > 0 ? " before" : " after") + " arrival";
  }

  function byArrival() { return new URLSearchParams(location.search).get("by") === "received"; }

  function severityName(n) { return n === null || n === undefined ? "-" : SEVERITIES[n]; }

  /* -- the view in the URL ------------------------------------------------------------------- */

  function splitList(text) {
    return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  }

  function viewFromForm() {
    const p = new URLSearchParams();
    const q = $("q").value.trim();
    if (q) p.set("q", q);
    for (const name of ["host", "app"]) {
      for (const value of splitList($(name).value)) p.append(name, value);
    }
    for (const name of ["severity", "facility", "transport"]) {
      if ($(name).value !== "") p.set(name, $(name).value);
    }
    if ($("errors").checked) p.set("errors", "1");
    if ($("by").value) p.set("by", $("by").value);
    const current = new URLSearchParams(location.search);
    for (const name of ["range", "since", "until"]) {
      if (current.has(name)) p.set(name, current.get(name));
    }
    return p;
  }

  function formFromView(p) {
    $("q").value = p.get("q") || "";
    $("host").value = p.getAll("host").join(", ");
    $("app").value = p.getAll("app").join(", ");
    $("severity").value = p.get("severity") || "";
    $("facility").value = p.get("facility") || "";
    $("transport").value = p.get("transport") || "";
    $("errors").checked = p.get("errors") === "1";
    $("by").value = p.get("by") === "received" ? "received" : "";
    const range = p.has("since") || p.has("until") ? null : (p.get("range") || "24h");
    for (const button of document.querySelectorAll(".preset")) {
      button.classList.toggle("active", button.dataset.range === range);
    }
    $("since").value = p.has("since") ? toLocalInput(Number(p.get("since"))) : "";
    $("until").value = p.has("until") ? toLocalInput(Number(p.get("until"))) : "";
  }

  function go(p) {
    history.pushState(null, "", p.toString() ? "?" + p.toString() : location.pathname);
    load();
  }

  function setRange(since, until) {
    const p = viewFromForm();
    p.delete("range");
    p.set("since", String(Math.floor(since)));
    if (until !== null) p.set("until", String(Math.ceil(until))); else p.delete("until");
    go(p);
  }

  /* -- talking to the server ----------------------------------------------------------------- */

  async function api(path, params) {
    const response = await fetch(path + "?" + params.toString(), {credentials: "same-origin"});
    const body = await response.json().catch(() => ({error: response.statusText}));
    if (!response.ok) {
      const error = new Error(body.error || response.statusText);
      error.field = body.field;
      throw error;
    }
    return body;
  }

  function showError(error) {
    if (error.field === "q") {
      $("q-error").textContent = error.message;
      $("q-error").hidden = false;
      $("q").setAttribute("aria-invalid", "true");
    } else {
      $("error").textContent = (error.field ? error.field + ": " : "") + error.message;
      $("error").hidden = false;
    }
  }

  function clearErrors() {
    $("q-error").hidden = true;
    $("q-error").textContent = "";
    $("q").removeAttribute("aria-invalid");
    $("error").hidden = true;
    $("error").textContent = "";
  }

  /* -- results ------------------------------------------------------------------------------- */

  function row(r) {
    const sev = r.severity === null ? 8 : r.severity;
    const app = (r.app_name || "-") + (r.procid ? "[" + r.procid + "]" : "");
    const skewed = r.skew !== null && r.skew !== undefined;
    const tr = el("tr", {class: "sev-" + sev + (r.error ? " parse-error" : "") + (skewed ? " skewed" : ""),
      "data-id": String(r.id)},
      el("td", {class: "time"}, formatTime(byArrival() ? r.received_at : r.time),
        skewed ? el("span", {class: "skew", title: skewText(r.skew)}, " ⚠ skew") : null),
      el("td", {class: "host"}, visible(r.hostname || "-")),
      el("td", {class: "app"}, visible(app)),
      el("td", {class: "severity"}, severityName(r.severity)),
      el("td", {class: "msg"}, visible(r.msg) + (r.truncated ? " …" : "")));
    tr.addEventListener("click", () => openDetail(r.id));
    return tr;
  }

  function appendRows(records) {
    const body = $("rows");
    const fragment = document.createDocumentFragment();
    for (const r of records) fragment.append(row(r));
    body.append(fragment);
  }

  function prependRows(records) {   // records oldest first: the newest ends on top
    const body = $("rows");
    for (const r of records) body.prepend(row(r));
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
  }

  async function loadMore() {
    if (nextBefore === null) return;
    const mine = generation;
    const p = new URLSearchParams(location.search);
    p.set("before", String(nextBefore));
    const page = await api("/api/messages", p).catch((e) => { showError(e); return null; });
    if (!page || mine !== generation) return;
    appendRows(page.records);
    nextBefore = page.next_before;
    $("more").hidden = nextBefore === null;
  }

  /* -- histogram and facets ------------------------------------------------------------------ */

  function drawHistogram(h) {
    $("total").textContent = String(h.total);
    $("total").dataset.total = String(h.total);
    $("later").hidden = !h.later;
    $("later").textContent = h.later ? "(" + h.later + " dated later than the chart: clock skew?)" : "";
    const box = $("chart");
    if (chart) { chart.destroy(); chart = null; }
    box.replaceChildren();
    const keys = Object.keys(h.series).map(Number).sort((a, b) => a - b);
    const xs = h.times.map((t) => t + h.step / 2);
    const stacked = [];
    let running = new Array(xs.length).fill(0);
    for (const key of keys) {
      running = running.map((v, i) => v + h.series[String(key)][i]);
      stacked.push({key: key, values: running});
    }
    stacked.reverse();   // the tallest stack first, each lower one painted over it
    const series = [{}].concat(stacked.map((s) => ({
      label: s.key === 8 ? "none" : SEVERITIES[s.key],
      stroke: COLOURS[s.key],
      fill: COLOURS[s.key],
      width: 0,
      paths: uPlot.paths.bars({size: [0.9, 64]}),
      points: {show: false},
      value: (u, v, si, i) => (i === null ? "" : String(h.series[String(s.key)][i])),
    })));
    const data = [xs].concat(stacked.map((s) => s.values));
    const options = {
      width: Math.max(300, box.clientWidth || 600),
      height: 160,
      series: series,
      legend: {show: true, live: false},
      scales: {x: {time: true, range: () => [h.start, h.start + h.buckets * h.step]},
               y: {range: (u, min, max) => [0, Math.max(1, max)]}},
      axes: [{}, {size: 50}],
      cursor: {drag: {x: true, y: false, setScale: false}, points: {show: false}},
      hooks: {setSelect: [(u) => {
        if (u.select.width < 3) return;
        const from = u.posToVal(u.select.left, "x");
        const to = u.posToVal(u.select.left + u.select.width, "x");
        setRange(from, to);
      }]},
    };
    chart = new uPlot(options, data, box);
    box.dataset.buckets = String(h.buckets);
  }

  function drawFacet(list, name, pairs) {
    const items = pairs.map(([value, count]) => {
      const button = el("button", {type: "button", class: "facet", title: "filter by this " + name},
        visible(value));
      button.addEventListener("click", () => {
        const p = viewFromForm();
        p.delete(name);
        p.append(name, value);
        formFromView(p);
        go(p);
      });
      return el("li", {}, button, el("span", {class: "count"}, String(count)));
    });
    list.replaceChildren(...items);
  }

  /* -- the live tail ------------------------------------------------------------------------- */

  function scrolledAway() { return $("results-box").scrollTop > 4; }

  function showPending() {
    const button = $("new-arrivals");
    button.hidden = pending.length === 0;
    button.textContent = pending.length + " new while you scrolled: show them";
  }

  function onLive(records) {
    const now = Date.now();
    for (let i = 0; i < records.length; i++) arrivals.push(now);
    if (scrolledAway()) {
      pending = pending.concat(records);
      showPending();
      return;
    }
    prependRows(records);
  }

  function flushPending() {
    prependRows(pending);
    pending = [];
    showPending();
    $("results-box").scrollTop = 0;
  }

  function updateRate() {
    const now = Date.now();
    arrivals = arrivals.filter((t) => now - t < 10000);
    $("rate").textContent = events ? (arrivals.length / 10).toFixed(1) + " msg/s" : "";
  }

  function startTail(after) {
    if (events) { events.close(); events = null; }
    const p = new URLSearchParams(location.search);
    if (p.has("until")) {
      $("live-state").textContent = "off (the range has an end)";
      return;
    }
    p.set("after", String(after));
    events = new EventSource("/api/stream?" + p.toString());
    $("live-state").textContent = "connecting";
    events.addEventListener("hello", () => { $("live-state").textContent = "on"; });
    events.addEventListener("records", (e) => onLive(JSON.parse(e.data)));
    events.addEventListener("failure", (e) => {
      $("live-state").textContent = "stopped: " + JSON.parse(e.data).error;
      events.close();
      events = null;
    });
    events.onerror = () => { if (events) $("live-state").textContent = "reconnecting"; };
  }

  /* -- detail -------------------------------------------------------------------------------- */

  const FIELDS = ["id", "time", "timestamp", "received_at", "skew", "facility", "severity", "version",
    "hostname", "app_name", "procid", "msgid", "msg", "msg_b64", "bom", "transport", "peer",
    "listener", "tls_subject", "tls_fingerprint", "error", "extra"];

  function fieldText(name, value) {
    if (value === null || value === undefined) return "-";
    if (name === "time" || name === "received_at") return formatTime(value);
    if (name === "skew") return skewText(value);
    if (name === "facility") return FACILITIES[value] + " (" + value + ")";
    if (name === "severity") return SEVERITIES[value] + " (" + value + ")";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  async function openDetail(id) {
    const r = await api("/api/messages/" + encodeURIComponent(id), new URLSearchParams())
      .catch((e) => { showError(e); return null; });
    if (!r) return;
    $("detail-id").textContent = String(r.id);
    const fields = FIELDS.filter((name) => name in r).map((name) => el("tr", {},
      el("th", {}, name), el("td", {class: "field-" + name}, visible(fieldText(name, r[name]), name === "msg"))));
    $("detail-fields").replaceChildren(...fields);
    const sd = [];
    for (const element of r.structured_data) {
      for (const [key, value] of element.params) {
        sd.push(el("tr", {}, el("td", {}, visible(element.id)), el("td", {}, visible(key)),
          el("td", {}, visible(value))));
      }
      if (element.params.length === 0) sd.push(el("tr", {}, el("td", {}, visible(element.id))));
    }
    $("detail-sd").replaceChildren(...(sd.length ? sd : [el("tr", {}, el("td", {}, "none"))]));
    const raw = $("detail-raw");
    if (r.raw_marked) {
      const [before, at, after] = r.raw_marked;
      raw.replaceChildren(before, el("mark", {title: "column " + r.error_column}, at || "⟂"), after);
    } else {
      raw.replaceChildren(r.raw_escaped);
    }
    $("detail").hidden = false;
  }

  /* -- loading a view ------------------------------------------------------------------------ */

  async function load() {
    const mine = ++generation;
    const p = new URLSearchParams(location.search);
    formFromView(p);
    clearErrors();
    pending = [];
    showPending();
    $("rows").replaceChildren();
    $("more").hidden = true;
    const exported = new URLSearchParams(p);
    $("download").href = "/api/export?" + exported.toString();
    const label = p.has("since") || p.has("until") ? "in the chosen range"
      : "in the last " + (p.get("range") || "24h");
    $("range-label").textContent = (p.get("range") === "all") ? "in all" : label;
    try {
      const [page, histogram, facets] = await Promise.all([
        api("/api/messages", p), api("/api/histogram", p), api("/api/facets", p)]);
      if (mine !== generation) return;
      appendRows(page.records);
      nextBefore = page.next_before;
      $("more").hidden = nextBefore === null;
      drawHistogram(histogram);
      drawFacet($("facet-hosts"), "host", facets.hosts);
      drawFacet($("facet-apps"), "app", facets.apps);
      startTail(page.last_id);
      document.body.dataset.loaded = String(mine);
    } catch (error) {
      if (mine !== generation) return;
      if (events) { events.close(); events = null; }
      $("live-state").textContent = "off";
      $("total").textContent = "0";
      $("total").dataset.total = "0";
      showError(error);
      document.body.dataset.loaded = String(mine);
    }
  }

  function init() {
    $("filters").addEventListener("submit", (e) => { e.preventDefault(); go(viewFromForm()); });
    for (const name of ["severity", "facility", "transport", "errors", "by"]) {
      $(name).addEventListener("change", () => go(viewFromForm()));
    }
    for (const button of document.querySelectorAll(".preset")) {
      button.addEventListener("click", () => {
        const p = viewFromForm();
        p.delete("since");
        p.delete("until");
        p.set("range", button.dataset.range);
        go(p);
      });
    }
    $("apply-range").addEventListener("click", () => {
      const since = $("since").value ? new Date($("since").value).getTime() / 1000 : null;
      const until = $("until").value ? new Date($("until").value).getTime() / 1000 : null;
      if (since === null) { showError(new Error("choose a start time")); return; }
      setRange(since, until);
    });
    $("more").addEventListener("click", loadMore);
    $("new-arrivals").addEventListener("click", flushPending);
    $("results-box").addEventListener("scroll", () => { if (!scrolledAway() && pending.length) flushPending(); });
    $("close-detail").addEventListener("click", () => { $("detail").hidden = true; });
    window.addEventListener("popstate", load);
    setInterval(updateRate, 1000);
    load();
  }

  init();
})();
