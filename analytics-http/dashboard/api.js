// The API client: the key in a header, the last rate-limit headers, waits after a 429, errors
// that name the field.

import { $ } from "./render.js";

// Where the API key is kept: this tab's session storage, never a URL.
const KEY_STORAGE = "analytics.apiKey";

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
  // What to do when the server refuses the key (the page shows its sign-in form).
  onUnauthorized() {},

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
      if (response.status === 401) this.onUnauthorized();
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

export { ApiError, KEY_STORAGE, client, query, showError };
