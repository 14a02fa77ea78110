// The live view: the summary stream read with fetch (a header can carry the key), reconnecting
// with Last-Event-ID.

import { ApiError, client, query } from "./api.js";
import { today } from "./overview.js";
import { $, fmt, chart, seriesData } from "./render.js";

// The stream is read with fetch (EventSource cannot send an API key header); on a drop it
// reconnects with Last-Event-ID, so the server does not resend a summary the page has.
const live = {
  controller: null,
  // Whether its view is shown (set by the router): the chart is drawn only then.
  visible: false,
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
      if (response.status === 401) client.onUnauthorized();
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
    if (!this.visible) return;
    const [x, y] = seriesData(this.latest.timeSeriesData);
    this.chart = chart($("live-chart"), this.chart, x, y);
  },
};

export { live };
