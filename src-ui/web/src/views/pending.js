// Pending: one card per consent, with every identity fact the daemon
// attested, a scope-narrowing control and the decisions.

import { h, facts } from "../dom.js";
import { duration, messageOf, shortHash } from "../format.js";
import { untilEl } from "./time.js";

export const DURATIONS = [
  [900, "15 minutes"],
  [3600, "1 hour"],
  [28800, "8 hours"],
];

/**
 * @param consents ConsentRequest[] (control protocol)
 * @param opts {now, locked, onLock, decide(id, decision, scopes|undefined) → Promise,
 *   cards: Map (kept by the caller between renders)}
 *
 * A card that has not changed is reused as it is, so a re-render caused by
 * some other agent's event never resets the scopes the user is unticking.
 */
/** What the agent would be allowed to do, after "wants to". */
export function action(c) {
  return c.action || `use ${c.provider_display} with ${c.scopes.join(", ")}`;
}

/**
 * The card's title, the action first, for a person in five seconds:
 * "triage-bot (in a box) wants to read code in every repository on
 * GitHub, for 1 hour".
 */
export function headline(c) {
  const where = c.box ? "in a box" : "not in a box";
  const who = `${c.agent.name} (${where})`;
  if (c.kind === "delegation" && c.delegation) {
    return `${who} wants to let ${c.delegation.sub_agent} ${action(c)} (delegation depth ${c.delegation.depth})`;
  }
  const when = c.duration_secs ? `, for ${duration(c.duration_secs)}` : "";
  if (c.kind === "approval") return `${who} needs your approval to ${action(c)}${when}`;
  return `${who} wants to ${action(c)}${when}`;
}

const base = (path) => (path ? path.split("/").pop() : "");

/**
 * The program a person knows the agent by. An MCP client's card comes
 * from `valetkey mcp proxy`, and a box's from its launcher: the binary
 * is then valetkey, and the real client is the box's command or the
 * first process above it that is not valetkey (Claude Code's node, the
 * editor).
 */
export function client(c) {
  if (base(c.exe) !== "valetkey") return c.exe;
  if (c.box) return c.box.argv.join(" ");
  const up = (c.parents || []).find((p) => p.exe && base(p.exe) !== "valetkey");
  return up ? `${up.exe} (pid ${up.pid}), through valetkey` : c.exe;
}

export function renderPending(consents, opts) {
  const cache = opts.cards ?? new Map();
  const live = new Set(consents.map((c) => c.id));
  for (const id of cache.keys()) if (!live.has(id)) cache.delete(id);
  if (consents.length === 0) {
    return h("p", { class: "empty" }, "No agent is waiting for you.");
  }
  const cards = consents.map((c) => {
    const key = `${c.requests}|${Boolean(opts.locked)}|${opts.onLock}`;
    const hit = cache.get(c.id);
    if (hit && hit.key === key) return hit.el;
    const el = card(c, opts);
    cache.set(c.id, { key, el });
    return el;
  });
  return h("div", { class: "cards" }, cards);
}

/** Why the binary's path cannot be taken at its word, or "" when it can. */
export function unverified(c) {
  const ns = c.foreign_namespaces || [];
  if (ns.length) {
    return `it runs in another ${ns.join(" and ")} namespace (a container, unshare or a sandbox), where this path may name a different file: trust the hash, not the path`;
  }
  if (c.exe_unverified) {
    return "this path is not the file the process runs (replaced or mounted over): trust the hash, not the path";
  }
  return "";
}

/**
 * Where the agent runs: the box valetkey run made (profile, network,
 * working directory, command, script), or a plain warning that nothing
 * confines it.
 */
export function confinement(c) {
  const b = c.box;
  if (!b) return "Not confined: this agent runs as you and can read your keychain";
  const net =
    b.network === "none"
      ? "no network"
      : b.network === "proxy"
        ? "network only through Valet Key's proxy"
        : b.network === "filtered"
          ? "network only to the providers and package registries"
          : "shared network, localhost included";
  return `In a box: profile ${b.profile}, ${net}, writes only ${b.cwd}`;
}

/** What holds the token to the scopes, for a person. */
export function limitWords(c) {
  const p = c.provider_display;
  switch (c.limit) {
    case "provider":
      return `${p}: the token carries only these scopes`;
    case "github_app":
      return "GitHub itself: your GitHub App narrows the token to these permissions and repositories";
    case "proxy_rules":
      return `Valet Key's proxy rules: ${p} cannot narrow the token, so it stays in Valet Key and never reaches the agent`;
    case "whole_login":
      return `Nothing: ${p} cannot narrow, and the agent gets a token with everything your login allows`;
    default:
      return "";
  }
}

function boxFacts(c) {
  const b = c.box;
  if (!b) return [];
  return [
    ["Command", b.argv.join(" ")],
    ["Script", b.script ? h("span", {}, `${b.script.path} `, h("code", { title: b.script.sha256 }, shortHash(b.script.sha256))) : ""],
    ["Box", b.name ? `only for agent ${b.name} (${b.id})` : b.id],
  ];
}

/** How to box an unboxed agent: nothing an editor-launched MCP client can act on. */
function boxHint(c) {
  if (c.box || base(c.exe) === "valetkey") return "";
  return "start it with valetkey run -- COMMAND";
}

/** What a person decides on, at the top of the card. */
function mainFacts(c, now) {
  return facts([
    ["Where", h("span", { class: c.box ? "boxed" : "unconfined" }, confinement(c))],
    ["Program", client(c)],
    ["Lets it", (c.in_words || []).join("; ") || action(c)],
    ["Limited by", c.limit ? h("span", { class: c.limit === "whole_login" ? "unconfined" : "" }, limitWords(c)) : ""],
    ["Serves", c.proxy_only ? "the egress proxy only: the agent gets placeholders, never the token" : ""],
    ["On behalf of", c.delegation ? c.delegation.chain.join(" → ") : ""],
    ["Requests", c.requests > 1 ? `${c.requests} identical requests folded into this one` : ""],
    ["Times out", untilEl("span", c.expires_at, now)],
  ]);
}

/** The facts a security-minded person checks, folded under "Details". */
function details(c) {
  return h(
    "details",
    { class: "details" },
    h("summary", {}, "Details"),
    facts([
      ...boxFacts(c),
      ["Binary", c.exe],
      ["Not verified", unverified(c)],
      [c.box ? "Fingerprint of what the box runs" : "Fingerprint", h("code", { title: c.sha256 }, shortHash(c.sha256))],
      ["Version", c.agent.version],
      ["Process", `pid ${c.pid}`],
      ["Started by", parents(c.parents)],
      ["Provider", `${c.provider_display} (${c.provider})`],
      ["Scopes", c.scopes.join(" ")],
      ["Resource", c.resource],
      ["To confine it", boxHint(c)],
    ]),
  );
}

function parents(list) {
  if (!list?.length) return "";
  return list.map((p) => `${p.exe ?? "(unreadable)"} (pid ${p.pid})`).join(" ← ");
}

function card(c, { now, locked, onLock, decide }) {
  const titleId = `consent-${c.id}-title`;
  const error = h("p", { class: "error", role: "alert" });
  const boxes = c.scopes.map((scope) =>
    h("input", { type: "checkbox", checked: true, value: scope, "aria-label": `Allow scope ${scope}` }),
  );
  const chosen = () => boxes.filter((b) => b.checked).map((b) => b.value);
  const remember = h("input", { type: "checkbox", "aria-label": "Remember this denial" });
  const hint = c.duration_secs;
  const preset = DURATIONS.some(([s]) => s === hint) ? hint : 3600;
  const select = h(
    "select",
    { "aria-label": "How long to allow", class: "duration" },
    DURATIONS.map(([secs, label]) => h("option", { value: String(secs), selected: secs === preset }, label)),
  );
  const allowFor = h("button", { type: "button", class: "primary", dataset: { action: "allow-for" } });
  const label = () => (allowFor.textContent = `Allow for ${duration(Number(select.value))}`);
  label();
  select.addEventListener("change", label);

  const allowButtons = [];
  const all = [];
  const act = async (decision, scopes) => {
    error.textContent = "";
    all.forEach((b) => (b.disabled = true));
    try {
      await decide(c.id, decision, scopes);
    } catch (e) {
      error.textContent = messageOf(e);
      all.forEach((b) => (b.disabled = false));
      sync();
    }
  };
  const narrowed = () => {
    const s = chosen();
    return s.length === c.scopes.length ? undefined : s;
  };
  const once = h(
    "button",
    { type: "button", dataset: { action: "allow-once" }, onclick: () => act({ kind: "once" }, narrowed()) },
    "Allow once",
  );
  allowFor.addEventListener("click", () =>
    act({ kind: "for", duration_secs: Number(select.value) }, narrowed()),
  );
  const always = h(
    "button",
    { type: "button", dataset: { action: "allow-always" }, onclick: () => act({ kind: "always" }, narrowed()) },
    "Allow always",
  );
  const deny = h(
    "button",
    {
      type: "button",
      class: "danger",
      dataset: { action: "deny" },
      onclick: () => act({ kind: "deny", remember: remember.checked }),
    },
    "Deny",
  );
  allowButtons.push(once, allowFor, always);
  all.push(once, allowFor, always, deny);
  const none = h("p", { class: "hint", hidden: true }, "Choose at least one scope to allow.");
  const sync = () => {
    const empty = chosen().length === 0;
    allowButtons.forEach((b) => (b.disabled = locked || empty));
    deny.disabled = locked;
    none.hidden = !empty;
  };
  boxes.forEach((b) => b.addEventListener("change", sync));
  sync();

  return h(
    "article",
    { class: "card", "aria-labelledby": titleId, dataset: { consent: c.id } },
    h("h2", { id: titleId }, headline(c)),
    c.agent.purpose ? h("p", { class: "purpose" }, `“${c.agent.purpose}”`) : null,
    (c.reasons || []).length
      ? h("ul", { class: "reasons" }, ...c.reasons.map((r) => h("li", {}, r)))
      : null,
    mainFacts(c, now),
    details(c),
    h(
      "fieldset",
      { class: "scopes" },
      h("legend", {}, "Scopes to allow (untick to narrow)"),
      boxes.map((b) => h("label", { class: "scope" }, b, " ", h("code", {}, b.value))),
    ),
    none,
    locked ? h("p", { class: "hint locked" }, onLock === "refuse" ? "Session locked." : "Session locked: unlock to decide.") : null,
    h(
      "div",
      { class: "actions" },
      once,
      h("span", { class: "group" }, allowFor, select),
      always,
      h("span", { class: "group" }, deny, h("label", { class: "remember" }, remember, " remember")),
    ),
    error,
  );
}
