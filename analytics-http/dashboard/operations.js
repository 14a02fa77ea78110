// Operations and the high-load panel: readiness (breaker, load, cache, dependencies), the last
// call's limits, and the demo's scenarios.

import { ApiError, client, showError } from "./api.js";
import { $, fmt, clear, el, pct, definitions } from "./render.js";

const operations = {
  timer: null,
  // Whether its view is shown (set by the router): polling continues only then.
  viewOpen: false,

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
      if (!operations.viewOpen) operations.stop();
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

export { operations, highLoad };
