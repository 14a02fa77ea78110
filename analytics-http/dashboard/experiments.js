// Experiments: list, create, and results in words a product manager reads.

import { client, showError } from "./api.js";
import { $, fmt, clear, el, pct } from "./render.js";

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

export { experiments };
