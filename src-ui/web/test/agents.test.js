import { afterEach, describe, expect, test } from "vitest";
import { $, $$, clearMocks, daemonEvent, mount, until } from "./setup.js";
import { agent, status, NOW } from "./fixtures.js";

const base = (over = {}) => ({
  connection: { state: "connected", status: status({ pending: 0 }) },
  consent_list: { consents: [] },
  agents_list: { agents: [agent()] },
  mcp_list: { servers: [] },
  activity_list: {
    entries: [
      { id: 2, ts: NOW - 2, kind: "token.issued", agent: "issue-triage", summary: "github: repo:read" },
      { id: 1, ts: NOW - 120, kind: "consent.decided", agent: "issue-triage", summary: "allowed for 1 hour" },
    ],
  },
  revoke: { grants_removed: 1, tokens_dropped: 1, tokens_revoked_upstream: 0, connections_closed: 0 },
  ...over,
});

afterEach(() => clearMocks());

const openTab = (name) => document.getElementById(`tab-${name}`).click();

describe("agents", () => {
  test("an agent shows its binary, hash, status, times and grants", async () => {
    mount(base());
    openTab("agents");
    const card = await until(() => $('[data-agent="issue-triage"]') ?? fail());
    const text = card.textContent;
    for (const fact of ["active", "/usr/bin/python3.11", "sha256:9f86d081884c", "2 h ago", "30 s ago"]) {
      expect(text).toContain(fact);
    }
    const row = $('tr[data-grant="11"]', card);
    expect([...row.cells].slice(0, 4).map((c) => c.textContent)).toEqual(["github", "repo:read", "in 50 min", "1 min ago"]);
    expect(document.getElementById("view-agents").hidden).toBe(false);
    expect(document.getElementById("view-pending").hidden).toBe(true);
  });

  test("a grant's scopes read with a space between them", async () => {
    const g = agent().grants[0];
    mount(base({ agents_list: { agents: [agent({ grants: [{ ...g, provider: "notes", scopes: ["mcp:tools", "offline_access"] }] })] } }));
    openTab("agents");
    const row = await until(() => $('tr[data-grant="11"]') ?? fail());
    expect(row.cells[1].textContent).toBe("mcp:tools offline_access");
  });

  test("Revoke on a grant revokes that grant at once", async () => {
    const { of } = mount(base());
    const button = await until(() => $('tr[data-grant="11"] [data-action="revoke-grant"]') ?? fail());
    expect(button.getAttribute("aria-label")).toBe("Revoke issue-triage's github grant (repo:read)");
    button.click();
    await until(() => expect(of("revoke")).toHaveLength(1));
    expect(of("revoke")[0].args).toEqual({ params: { target: { kind: "grant", id: 11 } } });
  });

  test("Revoke agent asks first; Cancel revokes nothing, Revoke does", async () => {
    const { of } = mount(base());
    const button = await until(() => $('[data-action="revoke-agent"]') ?? fail());
    button.click();
    const dialog = document.getElementById("confirm");
    await until(() => expect(dialog.hasAttribute("open")).toBe(true));
    expect(dialog.textContent).toContain("Revoke issue-triage?");
    document.getElementById("confirm-cancel").click();
    await until(() => expect(dialog.hasAttribute("open")).toBe(false));
    expect(of("revoke")).toHaveLength(0);

    button.click();
    await until(() => expect(dialog.hasAttribute("open")).toBe(true));
    document.getElementById("confirm-ok").click();
    await until(() => expect(of("revoke")).toHaveLength(1));
    expect(of("revoke")[0].args.params.target).toEqual({ kind: "agent", name: "issue-triage" });
  });

  test("Revoke everything asks first and revokes all", async () => {
    const { of } = mount(base());
    const button = await until(() => document.getElementById("revoke-all") ?? fail());
    expect(button.disabled).toBe(false);
    button.click();
    await until(() => expect(document.getElementById("confirm").textContent).toContain("Revoke everything?"));
    document.getElementById("confirm-ok").click();
    await until(() => expect(of("revoke")).toHaveLength(1));
    expect(of("revoke")[0].args.params.target).toEqual({ kind: "all" });
  });

  test("a suspended agent can be reinstated", async () => {
    const { of } = mount(base({ agents_list: { agents: [agent({ status: "suspended", grants: [] })] }, agents_reinstate: status() }));
    const button = await until(() => $('[data-action="reinstate"]') ?? fail());
    expect($(".badge").textContent).toBe("suspended");
    expect(document.getElementById("revoke-all").disabled).toBe(true);
    button.click();
    await until(() => expect(of("agents_reinstate")).toHaveLength(1));
    expect(of("agents_reinstate")[0].args).toEqual({ name: "issue-triage" });
  });

  test("a revoked event refreshes the agents view", async () => {
    let agents = [agent()];
    mount(base({ agents_list: () => ({ agents }) }));
    await until(() => $('tr[data-grant="11"]') ?? fail());
    agents = [agent({ status: "suspended", grants: [] })];
    await daemonEvent({ type: "revoked", target: { kind: "agent", name: "issue-triage" }, result: base().revoke });
    await until(() => expect($('tr[data-grant="11"]')).toBeNull());
    expect($('[data-agent="issue-triage"]').textContent).toContain("No grants.");
  });
});

describe("activity", () => {
  test("recent events are listed newest first", async () => {
    mount(base());
    openTab("activity");
    await until(() => $("table.activity") ?? fail());
    const rows = $$("table.activity tbody tr").map((r) => [...r.cells].map((c) => c.textContent));
    expect(rows).toEqual([
      ["just now", "token.issued", "issue-triage", "github: repo:read"],
      ["2 min ago", "consent.decided", "issue-triage", "allowed for 1 hour"],
    ]);
  });
});

describe("keyboard", () => {
  test("arrow keys move between tabs and focus follows", async () => {
    const { app } = mount(base());
    await app.ready;
    const pending = document.getElementById("tab-pending");
    pending.focus();
    pending.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    const agents = document.getElementById("tab-agents");
    expect(agents.getAttribute("aria-selected")).toBe("true");
    expect(document.activeElement).toBe(agents);
    expect(pending.tabIndex).toBe(-1);
    agents.dispatchEvent(new KeyboardEvent("keydown", { key: "End", bubbles: true }));
    expect(document.getElementById("tab-activity").getAttribute("aria-selected")).toBe("true");
    document.getElementById("tab-activity").dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    expect(pending.getAttribute("aria-selected")).toBe("true");
  });

  test("MCP servers show which agents use them; Revoke ends that agent's access to that server", async () => {
    const notes = {
      server: {
        name: "notes",
        url: "https://mcp.example.com/mcp",
        resource: "https://mcp.example.com/mcp",
        issuer: "https://auth.example.com/",
        authorization_endpoint: "https://auth.example.com/authorize",
        token_endpoint: "https://auth.example.com/token",
        scopes: ["mcp:tools"],
        scopes_supported: ["mcp:tools", "mcp:admin"],
        client_id: "c1",
        registration: "dynamic",
        confidential: false,
      },
      added_at: NOW - 600,
      logged_in_at: NOW - 600,
      login_scopes: ["mcp:tools", "offline_access"],
      login_required: false,
      agents: ["issue-triage"],
    };
    const withMcp = agent({
      grants: [
        ...agent().grants,
        { id: 12, provider: "notes", scopes: ["mcp:tools"], binary_sha256: "9f86", created_at: NOW - 60, expires_at: null, last_used_at: null },
      ],
    });
    const { of } = mount(base({ agents_list: { agents: [withMcp] }, mcp_list: { servers: [notes] } }));
    openTab("agents");
    const card = await until(() => $('[data-mcp="notes"]') ?? fail());
    for (const fact of ["logged in", "https://mcp.example.com/mcp", "https://auth.example.com/", "offline_access"]) {
      expect(card.textContent).toContain(fact);
    }
    const users = $$("[data-agent]", card);
    expect(users.map((u) => u.dataset.agent)).toEqual(["issue-triage"]);
    const button = $('[data-action="revoke-mcp"]', card);
    expect(button.getAttribute("aria-label")).toBe("Revoke issue-triage's access to notes");
    button.click();
    await until(() => expect(of("revoke")).toHaveLength(1));
    expect(of("revoke")[0].args).toEqual({ params: { target: { kind: "grant", id: 12 } } });
  });

  test("no MCP servers, no section", async () => {
    mount(base());
    openTab("agents");
    await until(() => $('[data-agent="issue-triage"]') ?? fail());
    expect($(".mcp-servers")).toBeNull();
  });
});
