// Activity: the daemon's recent events, newest first.

import { h } from "../dom.js";
import { agoEl } from "./time.js";

/** @param entries ActivityEntry[] (control protocol), newest first. */
export function renderActivity(entries, { now }) {
  if (entries.length === 0) return h("p", { class: "empty" }, "Nothing has happened yet.");
  return h(
    "table",
    { class: "activity" },
    h("caption", {}, "Recent activity"),
    h(
      "thead",
      {},
      h("tr", {}, ["When", "What", "Agent", "Details"].map((c) => h("th", { scope: "col" }, c))),
    ),
    h(
      "tbody",
      {},
      entries.map((e) =>
        h(
          "tr",
          { dataset: { kind: e.kind } },
          agoEl("td", e.ts, now),
          h("td", {}, h("span", { class: `kind kind-${e.kind.replace(".", "-")}` }, e.kind)),
          h("td", {}, e.agent ?? "—"),
          h("td", {}, e.summary),
        ),
      ),
    ),
  );
}
