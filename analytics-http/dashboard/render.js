// Rendering helpers: DOM building, number formats, bar lists, charts (uPlot).

// uPlot is loaded as a classic script before the modules run (window.uPlot).
const uPlot = window.uPlot;
const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat();

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

const pct = (x, digits = 1) => `${(x * 100).toFixed(digits)}%`;

function definitions(target, entries) {
  clear(target);
  for (const [term, value] of entries) target.append(el("dt", {}, term), el("dd", {}, value ?? "–"));
}

export { $, fmt, clear, el, bars, typeColour, percentChange, chart, seriesData, pct, definitions };
