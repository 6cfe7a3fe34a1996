// A tiny SVG line chart of the last few minutes. data-values holds what is plotted, so a test
// (or a curious reader) can see it move without reading pixels.
const NS = "http://www.w3.org/2000/svg";
const W = 100;
const H = 28;

export const SLOTS = 60; // 5 minutes of samples taken every 5 s

export interface Sparkline {
  el: SVGSVGElement;
  set(values: number[], max: number, label: string): void;
}

export function sparkline(testid?: string): Sparkline {
  const el = document.createElementNS(NS, "svg");
  el.setAttribute("viewBox", `0 0 ${W} ${H}`);
  el.setAttribute("preserveAspectRatio", "none");
  el.setAttribute("class", "spark");
  el.setAttribute("role", "img");
  if (testid) el.dataset.testid = testid;
  const area = document.createElementNS(NS, "polygon");
  area.setAttribute("class", "spark-area");
  const line = document.createElementNS(NS, "polyline");
  line.setAttribute("class", "spark-line");
  el.append(area, line);
  return {
    el,
    set(values, max, label) {
      const recent = values.slice(-SLOTS);
      // Newest sample at the right edge. A short history (a card just made) is spread over at
      // least a fifth of the width, so its first samples are a line, not a dot at the edge.
      const slots = Math.min(SLOTS, Math.max(recent.length, 12));
      const points = recent.map((v, i) => {
        const x = ((slots - recent.length + i) * W) / (slots - 1);
        const y = H - 1 - (Math.min(Math.max(v, 0), max) / max) * (H - 2);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      line.setAttribute("points", points.join(" "));
      area.setAttribute("points", points.length ? `${points[0].split(",")[0]},${H} ${points.join(" ")} ${W},${H}` : "");
      el.dataset.values = recent.map((v) => v.toFixed(1)).join(",");
      el.setAttribute("aria-label", label);
    },
  };
}
