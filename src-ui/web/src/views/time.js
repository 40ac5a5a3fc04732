// Relative times that stay true while the window is open: each element
// carries its timestamp, and `tick` rewrites only their text, so a periodic
// update never rebuilds a view (and never resets a half-made decision).

import { h } from "../dom.js";
import { ago, stamp, until } from "../format.js";

export const agoEl = (tag, ts, now) =>
  h(tag, { title: stamp(ts), dataset: ts == null ? undefined : { ago: String(ts) } }, ago(ts, now));

export const untilEl = (tag, ts, now) =>
  h(tag, { title: stamp(ts), dataset: ts == null ? undefined : { until: String(ts) } }, until(ts, now));

export function tick(root, now) {
  for (const el of root.querySelectorAll("[data-ago]")) el.textContent = ago(Number(el.dataset.ago), now);
  for (const el of root.querySelectorAll("[data-until]")) el.textContent = until(Number(el.dataset.until), now);
}
