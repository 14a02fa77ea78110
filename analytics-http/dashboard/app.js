// The analytics dashboard. It uses only the public HTTP API, as any client would: the API key
// (when the server needs one) lives in session storage and travels in the X-API-Key header.
"use strict";

const KEY_STORAGE = "analytics.apiKey";
const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat();

// ---- API client -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const detail = (body && body.error) || {};
    super(detail.message || `HTTP ${status}`);
    this.status = status;
    this.field = detail.field || null;
    this.retryAfter = retryAfter;
  }
  describe() {
    const where = this.field ? ` (field ${this.field})` : "";
    const wait = this.retryAfter ? ` — try again in ${this.retryAfter} s` : "";
    return `${this.message}${where}${wait}`;
  }
}

const client = {
  key: sessionStorage.getItem(KEY_STORAGE),
  lastLimits: null,
  // Until when calls wait after a 429 (ms since the epoch): the page never outpaces the limits.
  pausedUntil: 0,

  headers(extra) {
    const headers = { Accept: "application/json", ...extra };
    if (this.key) headers["X-API-Key"] = this.key;
    return headers;
  },

  remember(response) {
    const h = response.headers;
    if (h.get("x-ratelimit-limit") === null) return;
    this.lastLimits = {
      limit: h.get("x-ratelimit-limit"),
      remaining: h.get("x-ratelimit-remaining"),
      reset: h.get("x-ratelimit-reset"),
      policy: h.get("ratelimit-policy"),
      at: new Date(),
    };
  },

  async call(path, { method = "GET", body } = {}) {
    const wait = this.pausedUntil - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const response = await fetch(path, {
      method,
      headers: this.headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    this.remember(response);
    const text = await response.text();
    const json = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const retryAfter = Number(response.headers.get("retry-after")) || null;
      if (response.status === 429 && retryAfter) this.pausedUntil = Date.now() + retryAfter * 1000;
      if (response.status === 401) signIn.show("The server refused the key: enter a valid API key.");
      throw new ApiError(response.status, json, retryAfter);
    }
    return json;
  },
};

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  return search.toString();
}

function showError(view, error) {
  const target = $(`${view}-error`);
  if (target) target.textContent = error ? (error.describe ? error.describe() : String(error)) : "";
  if (error && !(error instanceof ApiError)) console.warn(error);
}

// ---- Rendering helpers ----------------------------------------------------------------------

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

// A horizontal bar list: label, count, a bar sized by share of the largest.
function bars(list, rows) {
  clear(list);
  if (!rows.length) {
    list.append(el("li", { class: "empty" }, "No data"));
    return;
  }
  const max = Math.max(...rows.map((r) => r.count));
  for (const row of rows) {
    const bar = el("i");
    bar.style.width = `${(100 * row.count) / max}%`;
    const value = row.percentage === undefined ? fmt.format(row.count) : `${fmt.format(row.count)} · ${row.percentage}%`;
    list.append(el("li", { title: row.label }, bar, el("span", {}, row.label), el("span", {}, value)));
  }
}

// A stable colour per event type, so a type looks the same in every view.
function typeColour(type) {
  let hash = 0;
  for (const c of type) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360} 65% 50%)`;
}

function percentChange(rate) {
  if (rate === null || rate === undefined) return { text: "no previous data", cls: "" };
  const pct = (rate * 100).toFixed(1);
  return rate >= 0 ? { text: `▲ ${pct}% vs previous period`, cls: "up" } : { text: `▼ ${pct.slice(1)}% vs previous period`, cls: "down" };
}

function chart(container, previous, timestamps, counts) {
  const width = Math.max(container.clientWidth, 280);
  const data = [timestamps, counts];
  if (previous && previous.root === container && previous.width === width) {
    previous.plot.setData(data);
    return previous;
  }
  if (previous) previous.plot.destroy();
  clear(container);
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim();
  const axisColour = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim();
  const axis = { stroke: axisColour, grid: { stroke: "rgba(128,128,128,0.15)" }, ticks: { stroke: "rgba(128,128,128,0.3)" } };
  const plot = new uPlot({
    width,
    height: 240,
    series: [{}, { label: "Events", stroke: accent, fill: `${accent}22`, width: 2, points: { show: counts.length < 60 } }],
    axes: [axis, { ...axis, values: (_, ticks) => ticks.map((t) => fmt.format(t)) }],
    scales: { y: { range: (_, min, max) => [0, Math.max(1, max * 1.1)] } },
  }, data, container);
  return { root: container, width, plot };
}

function seriesData(points) {
  return [points.map((p) => Date.parse(p.timestamp) / 1000), points.map((p) => p.count)];
}

// ---- Sign-in --------------------------------------------------------------------------------

const signIn = {
  show(message) {
    router.showOnly("sign-in");
    $("sign-in-error").textContent = message || "";
    $("api-key").focus();
  },
  async submit(event) {
    event.preventDefault();
    client.key = $("api-key").value.trim();
    try {
      await client.call("/api/experiments");
      sessionStorage.setItem(KEY_STORAGE, client.key);
      $("api-key").value = "";
      $("sign-out").hidden = false;
      router.go();
    } catch (error) {
      client.key = null;
      $("sign-in-error").textContent = error.status === 401 ? "That key is not valid." : error.message;
    }
  },
  out() {
    sessionStorage.removeItem(KEY_STORAGE);
    client.key = null;
    live.stop();
    signIn.show("Signed out.");
    $("sign-out").hidden = true;
  },
};

// ---- Overview -------------------------------------------------------------------------------

function today(timezone) {
  // en-CA formats as YYYY-MM-DD.
  return new Intl.DateTimeFormat("en-CA", { timeZone: timezone || undefined }).format(new Date());
}

function daysBefore(date, days) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - days);
  return d.toISOString().slice(0, 10);
}

const overview = {
  chart: null,

  range() {
    const timezone = $("timezone").value.trim();
    const preset = $("preset").value;
    const end = today(timezone);
    const back = { today: 0, "7d": 6, "30d": 29, "90d": 89 }[preset];
    if (back === undefined) return { startDate: $("start-date").value, endDate: $("end-date").value };
    return { startDate: daysBefore(end, back), endDate: end };
  },

  syncRangeInputs() {
    const custom = $("preset").value === "custom";
    for (const label of document.querySelectorAll("#overview-form .custom")) label.hidden = !custom;
    if (!custom) {
      const { startDate, endDate } = this.range();
      $("start-date").value = startDate;
      $("end-date").value = endDate;
    }
  },

  params() {
    return {
      ...this.range(),
      groupBy: $("group-by").value,
      timezone: $("timezone").value.trim(),
      eventType: $("f-event-type").value.trim(),
      userId: $("f-user").value.trim(),
      experimentId: $("f-experiment").value.trim(),
    };
  },

  async load() {
    this.syncRangeInputs();
    showError("overview", null);
    try {
      const summary = await client.call(`/api/analytics/summary?${query({ ...this.params(), compare: "previous" })}`);
      this.render(summary);
    } catch (error) {
      showError("overview", error);
    }
  },

  render(s) {
    $("total-events").textContent = fmt.format(s.totalEvents);
    if (!performance.getEntriesByName("overview-rendered").length) performance.mark("overview-rendered");
    $("unique-users").textContent = fmt.format(s.uniqueUsers);
    const change = (s.comparison && s.comparison.change) || {};
    for (const [id, rate] of [["total-change", change.totalEvents], ["users-change", change.uniqueUsers]]) {
      const c = percentChange(rate);
      $(id).textContent = c.text;
      $(id).className = `change ${c.cls}`;
    }
    badges($("badges"), s._metadata);
    const [x, y] = seriesData(s.timeSeriesData);
    this.chart = chart($("series-chart"), this.chart, x, y);
    bars($("by-type"), s.eventsByType.map((t) => ({ label: t.eventType, count: t.count })));
    bars($("top-pages"), s.topPages.map((p) => ({ label: p.page, count: p.views })));
    bars($("devices"), s.deviceStats.map((d) => ({ label: d.device, count: d.count, percentage: d.percentage })));
    bars($("browsers"), (s.browserStats || []).map((d) => ({ label: d.browser, count: d.count, percentage: d.percentage })));
    bars($("countries"), (s.countryStats || []).map((d) => ({ label: d.country, count: d.count, percentage: d.percentage })));
    const variants = s.variants ? Object.entries(s.variants) : [];
    $("variants-card").hidden = !variants.length;
    bars($("variants"), variants.map(([key, v]) => ({ label: `${key}: ${(v.conversionRate * 100).toFixed(1)}% converted`, count: v.users })));
  },
};

// Badges that say how an answer was produced: what no other dashboard shows.
function badges(container, meta) {
  clear(container);
  const add = (text, cls = "", title = "") => container.append(el("span", { class: `badge ${cls}`, title }, text));
  if (meta.cached) add(meta.stale ? `stale · ${Math.round((meta.ageMs || 0) / 1000)} s old` : `cached · ${Math.round((meta.ageMs || 0) / 1000)} s old`, meta.stale ? "warn" : "good");
  else add("fresh from the store");
  if (meta.stale && !meta.cached) add("stale", "warn");
  for (const reason of meta.degraded) add(`degraded: ${reason}`, "warn", "The server simplified this answer under load");
  if (meta.uniqueUsersApproximate) add("unique users approximate", "warn");
  if (meta.loadLevel !== "NORMAL") add(`load ${meta.loadLevel.toLowerCase()}`, "warn");
  add(`${meta.granularity} · ${meta.timezone}`);
  add(`${meta.responseTime.toFixed(2)} ms`);
}

// ---- Live -----------------------------------------------------------------------------------

// The stream is read with fetch (EventSource cannot send an API key header); on a drop it
// reconnects with Last-Event-ID, so the server does not resend a summary the page has.
const live = {
  controller: null,
  latest: null,
  lastId: null,
  updates: 0,
  chart: null,
  retryMs: 1000,

  setState(state) {
    $("live-state").textContent = state;
    $("live-state").className = `state ${state}`;
  },

  start() {
    if (this.controller) return;
    this.controller = new AbortController();
    this.run(this.controller.signal);
  },

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
    this.setState("closed");
  },

  async run(signal) {
    while (!signal.aborted) {
      this.setState("connecting");
      try {
        await this.readOnce(signal);
        this.retryMs = 1000;
      } catch (error) {
        if (signal.aborted) return;
        if (error.retryAfter) this.retryMs = error.retryAfter * 1000;
      }
      if (signal.aborted) return;
      this.setState("connecting");
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
      this.retryMs = Math.min(this.retryMs * 2, 30000);
    }
  },

  async readOnce(signal) {
    const timezone = $("timezone").value.trim();
    const day = today(timezone);
    const url = `/api/analytics/stream?${query({ startDate: day, endDate: day, groupBy: "hour", timezone })}`;
    const headers = client.headers({ Accept: "text/event-stream" });
    if (this.lastId) headers["Last-Event-ID"] = this.lastId;
    const response = await fetch(url, { headers, signal });
    client.remember(response);
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      if (response.status === 401) signIn.show("The server refused the key: enter a valid API key.");
      throw new ApiError(response.status, body, Number(response.headers.get("retry-after")) || null);
    }
    this.setState("open");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  },

  dispatch(block) {
    let id = null, name = "message", data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    if (id !== null) this.lastId = id;
    if (name !== "message") return;
    this.latest = JSON.parse(data.join("\n"));
    this.updates += 1;
    this.render();
  },

  // The stream stays open while other views are shown (one connection); the chart is drawn
  // when its view is visible, since a hidden container has no width.
  render() {
    $("live-updates").textContent = this.updates;
    $("live-last-id").textContent = this.lastId ? this.lastId.slice(0, 12) : "–";
    if (!this.latest) return;
    $("live-total").textContent = fmt.format(this.latest.totalEvents);
    $("live-users").textContent = fmt.format(this.latest.uniqueUsers);
    if (router.current !== "live") return;
    const [x, y] = seriesData(this.latest.timeSeriesData);
    this.chart = chart($("live-chart"), this.chart, x, y);
  },
};

// ---- Event log ------------------------------------------------------------------------------

const eventLog = {
  // Cursors of the pages visited: the first page has the empty cursor.
  cursor: "",
  pageNumber: 1,
  next: null,

  params() {
    return {
      eventType: $("log-event-type").value.trim(),
      userId: $("log-user").value.trim(),
      startDate: $("log-start").value,
      endDate: $("log-end").value,
      limit: $("log-limit").value,
    };
  },

  async load(cursor = "", pageNumber = 1) {
    showError("events", null);
    try {
      const page = await client.call(`/api/events?${query(this.params())}&cursor=${encodeURIComponent(cursor)}`);
      this.cursor = cursor;
      this.pageNumber = pageNumber;
      this.next = page.nextCursor || null;
      this.render(page.events);
    } catch (error) {
      showError("events", error);
    }
  },

  render(events) {
    const rows = clear($("log-rows"));
    for (const e of events) {
      const dot = el("span", { class: "type-dot" });
      dot.style.background = typeColour(e.eventType);
      const row = el("tr", { tabindex: "0", "data-id": e.id },
        el("td", {}, new Date(e.timestamp).toLocaleString()),
        el("td", {}, dot, e.eventType),
        el("td", {}, e.userId || "anonymous"),
        el("td", {}, e.page || ""),
        el("td", {}, e.device || ""),
        el("td", {}, e.country || ""));
      const open = () => this.detail(e);
      row.addEventListener("click", open);
      row.addEventListener("keydown", (k) => { if (k.key === "Enter" || k.key === " ") { k.preventDefault(); open(); } });
      rows.append(row);
    }
    if (!events.length) rows.append(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "No events")));
    $("log-next").disabled = !this.next;
    $("log-position").textContent = `page ${this.pageNumber} · ${events.length} events${this.next ? "" : " · the oldest"}`;
  },

  detail(event) {
    $("event-detail").hidden = false;
    $("detail-id").textContent = event.id;
    $("detail-json").textContent = JSON.stringify(event, null, 2);
  },
};

// ---- Generator ------------------------------------------------------------------------------

const BATCH_SIZE = 500;
const PAGES = ["/", "/pricing", "/docs", "/blog", "/checkout", "/signup", "/product/1", "/product/2"];
const DEVICES = ["desktop", "mobile", "tablet"];
const BROWSERS = ["Chrome", "Firefox", "Safari", "Edge"];
const COUNTRIES = ["US", "GB", "DE", "FR", "IN", "JP", "BR"];

const pick = (list) => list[Math.floor(Math.random() * list.length)];

function generateEvents(count, types, users, days) {
  const run = `dash-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const now = Date.now();
  const events = [];
  for (let i = 0; i < count; i += 1) {
    const user = users > 0 ? `user-${Math.floor(Math.random() * users)}` : null;
    const at = days > 0 ? now - Math.random() * days * 86400000 : now;
    events.push({
      id: `${run}-${i}`,
      eventType: pick(types),
      userId: user,
      page: pick(PAGES),
      device: pick(DEVICES),
      browser: pick(BROWSERS),
      country: pick(COUNTRIES),
      timestamp: new Date(at).toISOString(),
    });
  }
  return events;
}

const generator = {
  async send(event) {
    event.preventDefault();
    showError("generator", null);
    const count = Number($("gen-count").value);
    const types = [...document.querySelectorAll("#generator-form input[name=type]:checked")].map((c) => c.value);
    if (!types.length) return showError("generator", "Choose at least one event type.");
    const events = generateEvents(count, types, Number($("gen-users").value), Number($("gen-days").value));
    $("gen-send").disabled = true;
    $("gen-progress").max = events.length;
    $("gen-progress").value = 0;
    const started = performance.now();
    let accepted = 0, duplicates = 0;
    try {
      for (let i = 0; i < events.length; i += BATCH_SIZE) {
        const outcome = await this.sendBatch(events.slice(i, i + BATCH_SIZE));
        accepted += outcome.accepted.length;
        duplicates += outcome.duplicates.length;
        $("gen-progress").value = Math.min(i + BATCH_SIZE, events.length);
        const seconds = (performance.now() - started) / 1000;
        $("gen-status").textContent = `${fmt.format(accepted)} accepted, ${duplicates} duplicates · ${fmt.format(Math.round(accepted / Math.max(seconds, 0.001)))} events/s`;
      }
      $("gen-status").textContent += " · done: the overview and live view now count them.";
    } catch (error) {
      showError("generator", error);
    } finally {
      $("gen-send").disabled = false;
    }
  },

  // A failed batch is retried with the same ids: the server never counts an event twice.
  async sendBatch(batch) {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await client.call("/api/events/batch", { method: "POST", body: { events: batch } });
      } catch (error) {
        const retriable = error instanceof TypeError || error.status === 429 || error.status >= 500;
        if (!retriable || attempt >= 5) throw error;
        await new Promise((resolve) => setTimeout(resolve, (error.retryAfter || attempt) * 1000));
      }
    }
  },
};

// ---- Experiments ----------------------------------------------------------------------------

const pct = (x, digits = 1) => `${(x * 100).toFixed(digits)}%`;

function verdict(c) {
  const better = (c.absoluteUplift || 0) >= 0 ? "better" : "worse";
  switch (c.conclusion) {
    case "insufficient-sample":
      return `${c.variant}: not enough users yet to tell whether it differs from ${c.control}.`;
    case "significant":
      return `${c.variant} converts ${better} than ${c.control} (${pct(Math.abs(c.relativeUplift || 0))} relative); the difference is very unlikely to be chance.`;
    case "not-significant":
      return `${c.variant}: no reliable difference from ${c.control} so far; keep the experiment running or accept that they perform alike.`;
    default:
      return `${c.variant}: ${c.conclusion}.`;
  }
}

const experiments = {
  async load() {
    showError("experiments", null);
    try {
      const { experiments: list } = await client.call("/api/experiments");
      const rows = clear($("exp-rows"));
      for (const x of list) {
        const link = el("a", { href: "#experiments" }, x.id);
        link.addEventListener("click", (e) => { e.preventDefault(); this.results(x.id); });
        rows.append(el("tr", {}, el("td", {}, link), el("td", {}, x.name), el("td", {}, x.status),
          el("td", {}, x.variants.map((v) => `${v.key} (${v.weight})`).join(", "))));
      }
      if (!list.length) rows.append(el("tr", {}, el("td", { colspan: "4", class: "muted" }, "No experiments yet")));
    } catch (error) {
      showError("experiments", error);
    }
  },

  async create(event) {
    event.preventDefault();
    showError("experiments", null);
    const variants = $("exp-variants").value.split(",").map((part) => {
      const [key, weight] = part.split(":").map((s) => s.trim());
      return { key, weight: Number(weight || 1) };
    });
    try {
      await client.call("/api/experiments", {
        method: "POST",
        body: { id: $("exp-id").value.trim(), name: $("exp-name").value.trim(), variants, conversionEventType: $("exp-conversion").value.trim() || undefined, status: "running" },
      });
      await this.load();
      await this.results($("exp-id").value.trim());
    } catch (error) {
      showError("experiments", error);
    }
  },

  async results(id) {
    showError("experiments", null);
    try {
      const r = await client.call(`/api/experiments/${encodeURIComponent(id)}/results`);
      $("exp-results").hidden = false;
      $("exp-results-id").textContent = id;
      $("exp-interval").textContent = `${pct(r.confidenceLevel, 0)} interval`;
      const byVariant = Object.fromEntries(r.comparisons.map((c) => [c.variant, c]));
      const rows = clear($("exp-result-rows"));
      for (const v of r.variants) {
        const c = byVariant[v.key];
        rows.append(el("tr", {},
          el("td", {}, v.key === r.control ? `${v.key} (control)` : v.key),
          el("td", {}, fmt.format(v.users)), el("td", {}, fmt.format(v.conversions)), el("td", {}, pct(v.conversionRate, 2)),
          el("td", {}, c && c.relativeUplift !== null ? pct(c.relativeUplift) : "–"),
          el("td", {}, c && c.confidenceInterval ? `${pct(c.confidenceInterval.lower, 2)} to ${pct(c.confidenceInterval.upper, 2)}` : "–"),
          el("td", {}, c && c.pValue !== null ? c.pValue.toFixed(4) : "–"),
          el("td", {}, c && c.chanceToBeatControl !== null ? pct(c.chanceToBeatControl) : "–")));
      }
      const srm = r.sampleRatioMismatch;
      $("exp-srm").textContent = srm && srm.flagged
        ? "Warning: the variants did not get the share of users their weights ask for. Something in the assignment or tracking is off, so these results cannot be trusted until it is fixed."
        : "Users are split across variants as the weights ask: no sign of an assignment problem.";
      $("exp-srm").className = srm && srm.flagged ? "error" : "muted";
      const verdicts = clear($("exp-verdicts"));
      for (const c of r.comparisons) verdicts.append(el("li", {}, verdict(c)));
    } catch (error) {
      showError("experiments", error);
    }
  },
};

// ---- Operations -----------------------------------------------------------------------------

function definitions(target, entries) {
  clear(target);
  for (const [term, value] of entries) target.append(el("dt", {}, term), el("dd", {}, value ?? "–"));
}

const operations = {
  timer: null,

  start() {
    if (this.timer) return;
    this.refresh();
    this.timer = setInterval(() => this.refresh(), 5000);
  },

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  },

  // The readiness route needs no tenant and is not rate limited: polling it costs no quota.
  // It answers 503 with the same report when the service is not ready: shown, not an error.
  async refresh() {
    showError("operations", null);
    try {
      const response = await fetch("/api/analytics/health", { headers: { Accept: "application/json" } });
      const health = await response.json().catch(() => null);
      if (!health || !health.metrics) throw new ApiError(response.status, health, null);
      const m = health.metrics;
      const b = m.circuitBreaker;
      definitions($("ops-breaker"), b ? [["State", b.state], ["Failures", b.failureCount], ["Successes", b.successCount],
        ["Rejected", b.rejectedCount], ["Failure rate", b.failureRate === null ? "–" : pct(b.failureRate / 100)]]
        : [["State", "no breaker configured"]]);
      definitions($("ops-load"), [["Level", m.load.level], ["Requests/s", fmt.format(m.load.requestsPerSecond)],
        ["Avg latency", `${m.load.avgResponseTime.toFixed(2)} ms`], ["In flight", m.load.inFlight], ["Shed", m.load.shed],
        ["Status", health.status]]);
      const c = m.cache;
      definitions($("ops-cache"), c ? [["Hit rate", `${c.hitRate.toFixed(1)}%`], ["Entries", fmt.format(c.entries)],
        ["Size", `${fmt.format(c.size)} B`], ["Hits", fmt.format(c.hits)], ["Misses", fmt.format(c.misses)],
        ["Stale hits", fmt.format(c.staleHits)]] : [["State", "cache unavailable"]]);
      highLoad.gauges(m);
    } catch (error) {
      showError("operations", error);
    }
    const l = client.lastLimits;
    definitions($("ops-limits"), l ? [["Limit", l.limit], ["Remaining", l.remaining], ["Policy", l.policy],
      ["Resets", new Date(Number(l.reset) * 1000).toLocaleTimeString()], ["Seen", l.at.toLocaleTimeString()]] : [["Calls", "none yet"]]);
  },
};

// ---- High load (demo mode) ------------------------------------------------------------------

const highLoad = {
  gauges(m) {
    $("hl-rps").textContent = fmt.format(m.load.requestsPerSecond);
    $("hl-latency").textContent = `${m.load.avgResponseTime.toFixed(1)} ms`;
    $("hl-hit").textContent = m.cache ? `${m.cache.hitRate.toFixed(1)}%` : "–";
  },

  async run() {
    showError("high-load", null);
    $("hl-run").disabled = true;
    $("hl-state").textContent = "running…";
    operations.start();
    try {
      const report = await client.call("/api/demo/high-load", { method: "POST", body: {} });
      this.render(report);
      $("hl-state").textContent = report.passed ? "all scenarios passed" : "a scenario failed";
    } catch (error) {
      $("hl-state").textContent = "";
      showError("high-load", error.status === 404 ? "The scenarios run only when the server was started in demo mode (cargo run --release --example demo)." : error);
    } finally {
      $("hl-run").disabled = false;
      if (router.current !== "operations") operations.stop();
    }
  },

  render(report) {
    const rows = clear($("hl-rows"));
    const log = [];
    for (const s of report.scenarios) {
      rows.append(el("tr", {}, el("td", {}, s.name), el("td", { class: s.passed ? "pass" : "fail" }, s.passed ? "pass" : "FAIL"),
        el("td", {}, Object.entries(s.figures).map(([k, v]) => `${k}: ${v}`).join(" · "))));
      for (const line of s.log) log.push(`[${s.name}] ${line}`);
    }
    $("hl-log").textContent = log.join("\n");
  },
};

// ---- Navigation -----------------------------------------------------------------------------

const VIEWS = ["overview", "live", "events", "generator", "experiments", "operations", "high-load"];

const router = {
  current: null,

  showOnly(view) {
    for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== view;
    for (const link of document.querySelectorAll("#nav a")) {
      if (link.dataset.view === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  },

  go() {
    const view = VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "overview";
    this.current = view;
    this.showOnly(view);
    if (view === "live") {
      live.start();
      live.render();
    }
    if (view === "operations") operations.start(); else operations.stop();
    if (view === "overview") overview.load();
    if (view === "events") eventLog.load();
    if (view === "experiments") experiments.load();
  },
};

// ---- Start ----------------------------------------------------------------------------------

function fillTimezones() {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const list = $("timezones");
  for (const zone of ["UTC", ...zones]) list.append(el("option", { value: zone }));
  $("timezone").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

async function start() {
  fillTimezones();
  $("sign-in-form").addEventListener("submit", (e) => signIn.submit(e));
  $("sign-out").addEventListener("click", () => signIn.out());
  $("overview-form").addEventListener("submit", (e) => { e.preventDefault(); overview.load(); });
  $("preset").addEventListener("change", () => overview.load());
  $("events-form").addEventListener("submit", (e) => { e.preventDefault(); eventLog.load(); });
  $("log-first").addEventListener("click", () => eventLog.load());
  $("log-next").addEventListener("click", () => eventLog.next && eventLog.load(eventLog.next, eventLog.pageNumber + 1));
  $("generator-form").addEventListener("submit", (e) => generator.send(e));
  $("exp-form").addEventListener("submit", (e) => experiments.create(e));
  $("hl-run").addEventListener("click", () => highLoad.run());
  window.addEventListener("hashchange", () => router.go());
  // Does this server need a key? A cheap call tells: without one, header mode just answers.
  try {
    await client.call("/api/experiments");
    $("sign-out").hidden = !client.key;
    router.go();
  } catch (error) {
    if (error.status !== 401) {
      router.go();
      showError("overview", error);
    }
  }
}

document.addEventListener("DOMContentLoaded", start);
