// The event log: filters, cursor paging, an event's detail.

import { client, query, showError } from "./api.js";
import { $, clear, el, typeColour } from "./render.js";

const eventLog = {
  // Cursors of the pages visited: the first page has the empty cursor.
  cursor: "",
  pageNumber: 1,
  next: null,
  // The number of the latest load: a slower, older answer never replaces a newer one
  // (opening the view and submitting the form at once start two loads).
  latest: 0,

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
    const request = ++this.latest;
    $("log-position").textContent = "loading…";
    try {
      const page = await client.call(`/api/events?${query(this.params())}&cursor=${encodeURIComponent(cursor)}`);
      if (request !== this.latest) return;
      this.cursor = cursor;
      this.pageNumber = pageNumber;
      this.next = page.nextCursor || null;
      this.render(page.events);
    } catch (error) {
      if (request === this.latest) showError("events", error);
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

export { eventLog };
