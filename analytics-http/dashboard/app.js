// The analytics dashboard. It uses only the public HTTP API, as any client would: the API key
// (when the server needs one) lives in session storage and travels in the X-API-Key header.
// This module signs in, routes between views and wires the page.

import { KEY_STORAGE, client, showError } from "./api.js";
import { eventLog } from "./events.js";
import { experiments } from "./experiments.js";
import { generator } from "./generator.js";
import { live } from "./live.js";
import { highLoad, operations } from "./operations.js";
import { overview } from "./overview.js";
import { $, el } from "./render.js";


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
    live.visible = view === "live";
    if (view === "live") {
      live.start();
      live.render();
    }
    operations.viewOpen = view === "operations";
    if (view === "operations") operations.start(); else operations.stop();
    if (view === "overview") overview.load();
    if (view === "events") eventLog.load();
    if (view === "experiments") experiments.load();
  },
};

function fillTimezones() {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const list = $("timezones");
  for (const zone of ["UTC", ...zones]) list.append(el("option", { value: zone }));
  $("timezone").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

async function start() {
  client.onUnauthorized = () => signIn.show("The server refused the key: enter a valid API key.");
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
