// The overview: range presets, filters, cards with the change from the previous period, the
// series chart, breakdowns and the badges that say how the answer was made.

import { client, query, showError } from "./api.js";
import { $, fmt, clear, el, bars, percentChange, chart, seriesData } from "./render.js";

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

export { overview, today };
