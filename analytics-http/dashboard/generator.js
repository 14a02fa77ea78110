// The event generator: N events through the batch API, retried with the same ids.

import { client, showError } from "./api.js";
import { $, fmt } from "./render.js";

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

export { generator };
