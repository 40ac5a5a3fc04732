import { afterEach, describe, expect, test } from "vitest";
import { $, $$, byText, clearMocks, connectionEvent, daemonEvent, mount, until } from "./setup.js";
import { agent, consent, status } from "./fixtures.js";
import { client, headline } from "../src/views/pending.js";

const base = (over = {}) => ({
  connection: { state: "connected", status: status() },
  consent_list: { consents: [consent()] },
  agents_list: { agents: [] },
  mcp_list: { servers: [] },
  activity_list: { entries: [] },
  ...over,
});

afterEach(() => clearMocks());

describe("pending consents", () => {
  test("a binary whose path cannot be verified says so, and a normal one does not", async () => {
    const odd = consent({ id: "c_ffffffffffffffffffffffffffffffff", exe: "/usr/bin/git", foreign_namespaces: ["mnt", "user"], exe_unverified: true });
    mount(base({ consent_list: { consents: [consent(), odd] } }));
    const card = await until(() => $('[data-consent="c_ffffffffffffffffffffffffffffffff"]') ?? fail());
    expect(card.textContent).toContain("Not verified");
    expect(card.textContent).toContain("it runs in another mnt and user namespace");
    const normal = $('[data-consent="c_0123456789abcdef0123456789abcdef"]');
    expect(normal.textContent).not.toContain("Not verified");
  });

  test("a boxed agent's card shows its box, an unboxed one says it is not confined", async () => {
    const box = {
      id: "b_0011223344556677",
      profile: "default",
      network: "none",
      name: "issue-triage",
      argv: ["python3", "triage.py", "--label"],
      cwd: "/home/me/project",
      program: { path: "/usr/bin/python3.11", sha256: "aa".repeat(32) },
      script: { path: "/home/me/project/triage.py", sha256: "bb".repeat(32) },
      entry_sha256: "cc".repeat(32),
    };
    const boxed = consent({ id: "c_ffffffffffffffffffffffffffffffff", box, sha256: box.entry_sha256 });
    mount(base({ consent_list: { consents: [consent(), boxed] } }));
    const card = await until(() => $('[data-consent="c_ffffffffffffffffffffffffffffffff"]') ?? fail());
    const text = card.textContent;
    expect(text).toContain("In a box: profile default, no network, writes only /home/me/project");
    expect(text).toContain("python3 triage.py --label");
    expect(text).toContain("/home/me/project/triage.py");
    expect(text).toContain("only for agent issue-triage");
    expect(text).toContain("Fingerprint of what the box runs");
    expect(text).not.toContain("Entry hash");
    expect(text).not.toContain("Not confined");
    const plain = $('[data-consent="c_0123456789abcdef0123456789abcdef"]');
    expect(plain.textContent).toContain("Not confined: this agent runs as you and can read your keychain");
    expect($(".unconfined", plain)).not.toBeNull();
  });

  test("a proxy box's card says what the scopes allow in words and what holds the token to them", async () => {
    const box = {
      id: "b_0011223344556677",
      profile: "dev",
      network: "proxy",
      argv: ["sh", "agent.sh"],
      cwd: "/home/me/project",
      program: { path: "/usr/bin/dash", sha256: "aa".repeat(32) },
      entry_sha256: "cc".repeat(32),
    };
    const ruled = consent({
      id: "c_ffffffffffffffffffffffffffffffff",
      box,
      scopes: ["contents:read@octo/hello"],
      in_words: ["read code in octo/hello"],
      limit: "proxy_rules",
      proxy_only: true,
    });
    const whole = consent({ limit: "whole_login" });
    mount(base({ consent_list: { consents: [whole, ruled] } }));
    const card = await until(() => $('[data-consent="c_ffffffffffffffffffffffffffffffff"]') ?? fail());
    expect(card.textContent).toContain("network only through Valet Key's proxy");
    expect(card.textContent).toContain("Lets itread code in octo/hello");
    expect(card.textContent).toContain("Valet Key's proxy rules: GitHub cannot narrow the token, so it stays in Valet Key");
    const plain = $('[data-consent="c_0123456789abcdef0123456789abcdef"]');
    expect(plain.textContent).toContain("Nothing: GitHub cannot narrow, and the agent gets a token with everything your login allows");
    expect(plain.textContent).toContain("Lets ituse GitHub with issues:read, repo:read");
    expect(card.textContent).toContain("Servesthe egress proxy only: the agent gets placeholders, never the token");
    expect(plain.textContent).not.toContain("Serves");
  });

  test("a card shows every identity fact the daemon attested", async () => {
    mount(base());
    const card = await until(() => $("[data-consent]") ?? fail());
    const text = card.textContent;
    expect($("h2", card).textContent).toBe(
      "issue-triage (not in a box) wants to use GitHub with issues:read, repo:read, for 1 hour",
    );
    for (const fact of [
      "“label new GitHub issues”",
      "/usr/bin/python3.11",
      "sha256:9f86d081884c",
      "1.4.2",
      "pid 4242",
      "/usr/bin/bash (pid 4200) ← (unreadable) (pid 1)",
      "GitHub (github)",
      "https://api.github.com",
      "1 hour",
      "2 identical requests folded into this one",
      "in 1 min",
    ]) {
      expect(text).toContain(fact);
    }
    expect($$("fieldset.scopes input", card).map((b) => [b.value, b.checked])).toEqual([
      ["issues:read", true],
      ["repo:read", true],
    ]);
    expect($("#pending-count").textContent).toBe("1");
    expect(document.title).toBe("Valet Key (1 pending)");
  });

  test("the headline is the action, and the facts a security-minded person checks fold under Details", async () => {
    const box = {
      id: "b_0011223344556677",
      profile: "default",
      network: "proxy",
      argv: ["python3", "triage.py"],
      cwd: "/home/me/project",
      program: { path: "/usr/bin/python3.11", sha256: "aa".repeat(32) },
      entry_sha256: "cc".repeat(32),
    };
    const c = consent({
      agent: { name: "triage-bot", version: "1", purpose: "" },
      box,
      sha256: box.entry_sha256,
      scopes: ["contents:read"],
      in_words: ["read code in every repository"],
      action: "read code in every repository on GitHub",
    });
    mount(base({ consent_list: { consents: [c] } }));
    const card = await until(() => $("[data-consent]") ?? fail());
    expect($("h2", card).textContent).toBe(
      "triage-bot (in a box) wants to read code in every repository on GitHub, for 1 hour",
    );
    const folded = $("details", card);
    expect(folded.open).toBe(false);
    expect($("summary", folded).textContent).toBe("Details");
    for (const fact of ["Binary", "pid 4242", "Started by", "b_0011223344556677", "sha256:cccccccccccc"]) {
      expect(folded.textContent).toContain(fact);
      expect($("dl.facts", card).textContent).not.toContain(fact);
    }
    expect(card.textContent).not.toContain("no duration given");
    expect(card.textContent).not.toContain("Entry hash");
    const noDuration = consent({ duration_secs: undefined });
    expect(headline(noDuration)).toBe("issue-triage (not in a box) wants to use GitHub with issues:read, repo:read");
  });

  test("an MCP client behind valetkey mcp proxy is named by its real program, with no hint it cannot use", async () => {
    const mcp = consent({
      exe: "/usr/bin/valetkey",
      parents: [
        { pid: 900, exe: "/usr/bin/valetkey" },
        { pid: 800, exe: "/usr/lib/node_modules/claude/bin/node" },
        { pid: 1, exe: null },
      ],
      provider: "notes",
      provider_display: "MCP server notes (mcp.example.com)",
      scopes: ["notes:read"],
      in_words: ["call the tools of notes"],
      action: "call the tools of notes",
      duration_secs: undefined,
    });
    mount(base({ consent_list: { consents: [mcp] } }));
    const card = await until(() => $("[data-consent]") ?? fail());
    expect($("h2", card).textContent).toBe("issue-triage (not in a box) wants to call the tools of notes");
    expect(card.textContent).toContain("Program/usr/lib/node_modules/claude/bin/node (pid 800), through valetkey");
    expect(card.textContent).toContain("Lets itcall the tools of notes");
    expect(card.textContent).not.toContain("valetkey run");
    expect(client(consent())).toBe("/usr/bin/python3.11");
    expect(client(consent({ exe: "/usr/bin/valetkey", box: { argv: ["gh", "pr", "list"] } }))).toBe("gh pr list");
  });

  test("what an agent declares is shown as text, never as markup", async () => {
    const evil = '<img src=x onerror="window.pwned=1">';
    mount(base({ consent_list: { consents: [consent({ agent: { name: evil, version: "1", purpose: evil } })] } }));
    const card = await until(() => $("[data-consent]") ?? fail());
    expect($("img", card)).toBeNull();
    expect($("h2", card).textContent).toContain(evil);
    expect(window.pwned).toBeUndefined();
  });

  test("Allow for 1 hour with a narrowed scope sends exactly that", async () => {
    const { of } = mount(base({ consent_decide: { grant_id: 3, scopes: ["repo:read"] } }));
    const card = await until(() => $("[data-consent]") ?? fail());
    const issues = $$("fieldset.scopes input", card).find((b) => b.value === "issues:read");
    issues.checked = false;
    issues.dispatchEvent(new Event("change"));
    byText("Allow for 1 hour").click();
    await until(() => expect(of("consent_decide")).toHaveLength(1));
    expect(of("consent_decide")[0].args).toEqual({
      params: {
        id: consent().id,
        decision: { kind: "for", duration_secs: 3600 },
        scopes: ["repo:read"],
      },
    });
  });

  test("the duration picker changes what Allow for sends", async () => {
    const { of } = mount(base({ consent_decide: { grant_id: 3, scopes: [] } }));
    const card = await until(() => $("[data-consent]") ?? fail());
    const select = $("select.duration", card);
    select.value = "28800";
    select.dispatchEvent(new Event("change"));
    byText("Allow for 8 hours").click();
    await until(() => expect(of("consent_decide")).toHaveLength(1));
    expect(of("consent_decide")[0].args.params.decision).toEqual({ kind: "for", duration_secs: 28800 });
  });

  test("Allow once sends the full scopes (no narrowing field) and the card goes", async () => {
    let consents = [consent()];
    const { of } = mount(
      base({
        consent_list: () => ({ consents }),
        consent_decide: () => {
          consents = [];
          return { scopes: ["issues:read", "repo:read"] };
        },
      }),
    );
    await until(() => $("[data-consent]") ?? fail());
    byText("Allow once").click();
    await until(() => expect(of("consent_decide")).toHaveLength(1));
    expect(of("consent_decide")[0].args.params).toEqual({ id: consent().id, decision: { kind: "once" } });
    await until(() => expect($("[data-consent]")).toBeNull());
    expect($("#view-pending").textContent).toContain("No agent is waiting");
  });

  test("Allow always sends always", async () => {
    const { of } = mount(base({ consent_decide: { grant_id: 4, scopes: [] } }));
    await until(() => $("[data-consent]") ?? fail());
    byText("Allow always").click();
    await until(() => expect(of("consent_decide")).toHaveLength(1));
    expect(of("consent_decide")[0].args.params.decision).toEqual({ kind: "always" });
  });

  test("with no scope ticked only Deny is possible, and remember is sent", async () => {
    const { of } = mount(base({ consent_decide: { scopes: [] } }));
    const card = await until(() => $("[data-consent]") ?? fail());
    for (const b of $$("fieldset.scopes input", card)) {
      b.checked = false;
      b.dispatchEvent(new Event("change"));
    }
    expect(byText("Allow once").disabled).toBe(true);
    expect(byText("Allow always").disabled).toBe(true);
    expect($(".hint", card).hidden).toBe(false);
    $('input[aria-label="Remember this denial"]', card).checked = true;
    byText("Deny").click();
    await until(() => expect(of("consent_decide")).toHaveLength(1));
    expect(of("consent_decide")[0].args.params).toEqual({
      id: consent().id,
      decision: { kind: "deny", remember: true },
    });
  });

  test("a refusal from the daemon is shown on the card and the buttons come back", async () => {
    mount(
      base({
        consent_decide: () => {
          throw { kind: "daemon", code: 2010, name: "unknown_consent", message: "that consent has already ended" };
        },
      }),
    );
    const card = await until(() => $("[data-consent]") ?? fail());
    byText("Allow once").click();
    await until(() => expect($('[role="alert"]', card).textContent).toBe("that consent has already ended"));
    expect(byText("Allow once").disabled).toBe(false);
  });

  test("while the session is locked nothing can be decided", async () => {
    mount(base({ connection: { state: "connected", status: status({ session_locked: true }) } }));
    const card = await until(() => $("[data-consent]") ?? fail());
    expect(byText("Allow once").disabled).toBe(true);
    expect(byText("Deny").disabled).toBe(true);
    expect(card.textContent).toContain("Session locked: unlock to decide.");
    expect($("#banner").textContent).toContain("requests are held until you unlock");
  });

  test("a consent.requested event re-fetches and shows the new card", async () => {
    let consents = [];
    const { of } = mount(base({ consent_list: () => ({ consents }) }));
    await until(() => expect($("#view-pending").textContent).toContain("No agent is waiting"));
    consents = [consent({ id: "c_new" })];
    await daemonEvent({ type: "consent.requested", consent: consents[0] });
    await until(() => expect($('[data-consent="c_new"]')).not.toBeNull());
    expect(of("consent_list").length).toBeGreaterThanOrEqual(2);
    expect($("#pending-count").textContent).toBe("1");
  });
});

describe("daemon connection", () => {
  test("a down daemon shows 'Daemon not running' with a Start button", async () => {
    const { of } = mount({
      connection: { state: "down", error: "cannot reach /run/user/1000/valetkey/control.sock" },
      start_daemon: null,
    });
    await until(() => expect($("#banner").textContent).toContain("Daemon not running."));
    expect($("#banner").textContent).toContain("control.sock");
    expect(of("consent_list")).toHaveLength(0);
    $("#start-daemon").click();
    await until(() => expect(of("start_daemon")).toHaveLength(1));
  });

  test("a failed start says why", async () => {
    mount({
      connection: { state: "down", error: "no socket" },
      start_daemon: () => {
        throw { kind: "launch", message: "could not start valetkeyd: /opt/valetkeyd is not installed" };
      },
    });
    await until(() => $("#start-daemon") ?? fail());
    $("#start-daemon").click();
    await until(() => expect($("#banner [role=alert]").textContent).toContain("is not installed"));
    expect($("#start-daemon").disabled).toBe(false);
  });

  test("when the daemon comes back every view is loaded", async () => {
    const { of } = mount(base({ connection: { state: "down", error: "no socket" }, agents_list: { agents: [agent()] } }));
    await until(() => $("#start-daemon") ?? fail());
    await connectionEvent({ state: "connected", status: status() });
    await until(() => expect($("[data-consent]")).not.toBeNull());
    expect(of("agents_list")).toHaveLength(1);
    expect(of("activity_list")).toHaveLength(1);
    expect($("#banner").textContent).not.toContain("Daemon not running");
  });

  test("Pause all agents and Resume follow the daemon's status", async () => {
    const { of } = mount(base({ set_paused: status({ paused: true }) }));
    await until(() => $("#pause") ?? fail());
    $("#pause").click();
    await until(() => expect(of("set_paused")).toHaveLength(1));
    expect(of("set_paused")[0].args).toEqual({ paused: true });
    await connectionEvent({ state: "connected", status: status({ paused: true }) });
    await until(() => expect($("#resume").textContent).toBe("Resume"));
    expect($("#banner").textContent).toContain("Issuing is paused");
  });
});

describe("stability", () => {
  test("events about other things never reset a half-narrowed card", async () => {
    let consents = [consent()];
    mount(base({ consent_list: () => ({ consents }) }));
    const card = await until(() => $("[data-consent]") ?? fail());
    const box = $$("fieldset.scopes input", card)[0];
    box.checked = false;
    box.dispatchEvent(new Event("change"));
    await daemonEvent({ type: "token.issued", agent: "other", provider: "github", scopes: ["x"] });
    consents = [consent(), consent({ id: "c_second" })];
    await daemonEvent({ type: "consent.requested", consent: consents[1] });
    await until(() => expect($('[data-consent="c_second"]')).not.toBeNull());
    expect($(`[data-consent="${consent().id}"]`)).toBe(card);
    expect(box.checked).toBe(false);
    expect($("#pending-count").textContent).toBe("2");
  });
});

describe("policy approvals and delegations", () => {
  test("a card says what kind of decision it is, why, and on whose behalf", async () => {
    mount(
      base({
        consent_list: {
          consents: [
            consent({
              kind: "delegation",
              reasons: ["a delegation at depth 3 needs your approval"],
              delegation: {
                sub_agent: "summarizer",
                depth: 3,
                chain: ["user:alice", "agent:planner", "agent:fetcher", "agent:summarizer"],
                ttl_secs: 60,
              },
            }),
          ],
        },
      }),
    );
    const card = await until(() => $("[data-consent]") ?? fail());
    expect($("h2", card).textContent).toBe(
      "issue-triage (not in a box) wants to let summarizer use GitHub with issues:read, repo:read (delegation depth 3)",
    );
    expect($(".reasons li", card).textContent).toBe("a delegation at depth 3 needs your approval");
    expect(card.textContent).toContain(
      "user:alice → agent:planner → agent:fetcher → agent:summarizer",
    );
  });
});
