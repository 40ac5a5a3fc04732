// Agents: every agent the daemon has seen, its binaries and its grants,
// with Revoke on each grant, on the agent, and on everything. The last two
// end more than one grant, so they ask first (opts.confirm). Above them,
// the remote MCP servers (`valetkey mcp add`) and the agents that use
// each, with Revoke on each agent's access to that server.

import { h, facts, scopeCodes } from "../dom.js";
import { messageOf, shortHash } from "../format.js";
import { agoEl, untilEl } from "./time.js";

/**
 * @param agents AgentView[] (control protocol)
 * @param opts {now, servers: McpServerStatus[], confirm(title, body) → Promise<bool>, revoke(target) → Promise, reinstate(name) → Promise}
 */
export function renderAgents(agents, opts) {
  const error = h("p", { class: "error", role: "alert" });
  const run = async (fn) => {
    error.textContent = "";
    try {
      await fn();
    } catch (e) {
      error.textContent = messageOf(e);
    }
  };
  const anyGrant = agents.some((a) => a.grants.length > 0);
  const everything = h(
    "button",
    {
      type: "button",
      class: "danger",
      id: "revoke-all",
      disabled: !anyGrant,
      onclick: () =>
        run(async () => {
          const ok = await opts.confirm(
            "Revoke everything?",
            "Every grant of every agent ends now. Agents will have to ask again.",
          );
          if (ok) await opts.revoke({ kind: "all" });
        }),
    },
    "Revoke everything…",
  );
  return h(
    "div",
    { class: "agents" },
    h("div", { class: "actions end" }, everything),
    error,
    servers(opts.servers ?? [], agents, opts, run),
    agents.length === 0
      ? h("p", { class: "empty" }, "No agent has asked for anything yet.")
      : agents.map((a) => agent(a, opts, run)),
  );
}

function agent(a, opts, run) {
  const titleId = `agent-${a.id}-title`;
  const revokeAgent = h(
    "button",
    {
      type: "button",
      class: "danger",
      dataset: { action: "revoke-agent" },
      "aria-label": `Revoke agent ${a.name}`,
      onclick: () =>
        run(async () => {
          const ok = await opts.confirm(
            `Revoke ${a.name}?`,
            `All of ${a.name}'s grants end, its open connections are closed and it is suspended until you allow it again.`,
          );
          if (ok) await opts.revoke({ kind: "agent", name: a.name });
        }),
    },
    "Revoke agent…",
  );
  const reinstate =
    a.status !== "active"
      ? h(
          "button",
          {
            type: "button",
            dataset: { action: "reinstate" },
            onclick: () => run(() => opts.reinstate(a.name)),
          },
          "Reinstate",
        )
      : null;
  return h(
    "article",
    { class: "card", "aria-labelledby": titleId, dataset: { agent: a.name } },
    h(
      "h2",
      { id: titleId },
      a.name,
      " ",
      h("span", { class: `badge status-${a.status}` }, a.status),
    ),
    a.purpose ? h("p", { class: "purpose" }, `“${a.purpose}”`) : null,
    facts([
      ["Version", a.version],
      [
        "Binary",
        a.binaries.map((b) =>
          h(
            "div",
            { class: "binary" },
            b.exe,
            " ",
            h("code", { title: b.sha256 }, shortHash(b.sha256)),
          ),
        ),
      ],
      ["First seen", agoEl("span", a.first_seen, opts.now)],
      ["Last seen", agoEl("span", a.last_seen, opts.now)],
    ]),
    grants(a, opts, run),
    h("div", { class: "actions" }, reinstate, revokeAgent),
  );
}

function grants(a, opts, run) {
  if (a.grants.length === 0) return h("p", { class: "empty" }, "No grants.");
  return h(
    "table",
    { class: "grants" },
    h("caption", {}, `Grants of ${a.name}`),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Provider", "Scopes", "Expires", "Last used", ""].map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    h(
      "tbody",
      {},
      a.grants.map((g) =>
        h(
          "tr",
          { dataset: { grant: String(g.id) } },
          h("td", {}, g.provider),
          h("td", {}, scopeCodes(g.scopes)),
          untilEl("td", g.expires_at, opts.now),
          agoEl("td", g.last_used_at, opts.now),
          h(
            "td",
            {},
            h(
              "button",
              {
                type: "button",
                class: "danger",
                dataset: { action: "revoke-grant" },
                "aria-label": `Revoke ${a.name}'s ${g.provider} grant (${g.scopes.join(" ")})`,
                onclick: () => run(() => opts.revoke({ kind: "grant", id: g.id })),
              },
              "Revoke",
            ),
          ),
        ),
      ),
    ),
  );
}

/** The MCP servers, each with the agents holding a grant for it. */
function servers(list, agents, opts, run) {
  if (list.length === 0) return null;
  return h(
    "section",
    { class: "mcp-servers", "aria-labelledby": "mcp-title" },
    h("h2", { id: "mcp-title" }, "MCP servers"),
    list.map((s) => server(s, agents, opts, run)),
  );
}

function loginState(s) {
  if (s.login_required) return h("span", { class: "badge status-suspended" }, "log in again");
  if (s.logged_in_at == null) return h("span", { class: "badge status-suspended" }, "not logged in");
  return h("span", { class: "badge status-active" }, "logged in");
}

function server(s, agents, opts, run) {
  const name = s.server.name;
  const users = agents.flatMap((a) => a.grants.filter((g) => g.provider === name).map((g) => [a, g]));
  return h(
    "article",
    { class: "card", dataset: { mcp: name } },
    h("h3", {}, name, " ", loginState(s)),
    facts([
      ["Endpoint", s.server.url],
      ["Audience", s.server.resource],
      ["Authorization server", s.server.issuer],
      ["Login scopes", scopeCodes(s.login_scopes)],
    ]),
    users.length === 0
      ? h("p", { class: "empty" }, "No agent has a grant for it.")
      : h(
          "ul",
          { class: "mcp-agents", "aria-label": `Agents using ${name}` },
          users.map(([a, g]) =>
            h(
              "li",
              { dataset: { agent: a.name } },
              a.name,
              " ",
              scopeCodes(g.scopes),
              " ",
              h(
                "button",
                {
                  type: "button",
                  class: "danger",
                  dataset: { action: "revoke-mcp" },
                  "aria-label": `Revoke ${a.name}'s access to ${name}`,
                  onclick: () => run(() => opts.revoke({ kind: "grant", id: g.id })),
                },
                "Revoke",
              ),
            ),
          ),
        ),
  );
}
