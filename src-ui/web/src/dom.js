// A tiny element builder. Everything an agent declares (its name, purpose,
// paths) is untrusted text, so the UI never assigns innerHTML: strings
// become text nodes, always.

/**
 * h("button", { class: "primary", onclick: fn, "aria-label": "…" }, "Text", child)
 * Props: `class`, `on<event>` handlers, `dataset` (object), booleans
 * (`disabled`, `checked`, `hidden`) as properties, the rest as attributes.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "checked" || key === "disabled" || key === "hidden" || key === "value") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Scopes as `<code>` elements with a space between each, so the text
 * (what a screen reader says, what a copy pastes) reads
 * "mcp:tools offline_access", not "mcp:toolsoffline_access". */
export function scopeCodes(scopes) {
  return scopes.flatMap((s, i) => (i === 0 ? [] : [" "]).concat([h("code", { class: "scope" }, s)]));
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A definition list from [term, description] pairs, skipping empty ones. */
export function facts(pairs, props = {}) {
  return h(
    "dl",
    { class: "facts", ...props },
    pairs
      .filter(([, d]) => d !== undefined && d !== null && d !== "")
      .map(([t, d]) => [h("dt", {}, t), h("dd", {}, d)]),
  );
}
