// The window's controller: holds what the daemon last said, re-fetches a
// view when an event says it changed, and renders. No polling: the daemon
// pushes events, and the Rust side reports its connection state.

import { h, replace } from "./dom.js";
import { messageOf, nowSecs } from "./format.js";
import { renderPending } from "./views/pending.js";
import { renderAgents } from "./views/agents.js";
import { renderActivity } from "./views/activity.js";
import { tick } from "./views/time.js";

const TABS = ["pending", "agents", "activity"];

/** Which views an event makes stale. */
export function staleViews(event) {
  switch (event.type) {
    case "consent.requested":
    case "consent.decided":
    case "consent.flood":
      return ["pending", "agents", "activity"];
    case "grant.changed":
    case "revoked":
    case "token.issued":
    case "agent.seen":
      return ["agents", "activity"];
    case "status.changed":
      return ["pending", "activity"];
    default:
      return ["activity"];
  }
}

/**
 * Starts the UI in `doc`.
 * @param api the object of api.js (or a stand-in)
 * @param subscribe (onEvent, onConnection) → Promise
 * @returns {ready: Promise, state, refresh}
 */
export function startApp(doc, api, subscribe, { now = nowSecs } = {}) {
  const $ = (id) => doc.getElementById(id);
  const state = {
    connection: { state: "connecting" },
    consents: [],
    agents: [],
    servers: [],
    activity: [],
    errors: {},
    tab: "pending",
  };
  // What each view was last rendered from, to skip renders that change nothing.
  const rendered = {};
  const cards = new Map();

  const connected = () => state.connection.state === "connected";
  const status = () => (connected() ? state.connection.status : null);

  const loaders = {
    pending: async () => (state.consents = await api.consents()),
    agents: async () => {
      const [agents, servers] = await Promise.all([api.agents(), api.mcpServers()]);
      state.agents = agents;
      state.servers = servers;
    },
    activity: async () => (state.activity = await api.activity(100)),
  };

  async function refresh(views = TABS) {
    if (!connected()) return render();
    await Promise.all(
      views.map(async (v) => {
        try {
          await loaders[v]();
          delete state.errors[v];
        } catch (e) {
          state.errors[v] = messageOf(e);
        }
      }),
    );
    render();
  }

  // Asks before a revoke that ends more than one grant.
  function confirm(title, body) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-body").textContent = body;
    const ok = $("confirm-ok");
    const cancel = $("confirm-cancel");
    return new Promise((resolve) => {
      let done = false;
      const finish = (answer) => {
        if (done) return;
        done = true;
        ok.onclick = cancel.onclick = dialog.onclose = null;
        if (dialog.open && typeof dialog.close === "function") dialog.close();
        dialog.removeAttribute("open");
        resolve(answer);
      };
      ok.onclick = () => finish(true);
      cancel.onclick = () => finish(false);
      dialog.onclose = () => finish(false); // Escape
      if (typeof dialog.showModal === "function") dialog.showModal();
      else dialog.setAttribute("open", "");
      cancel.focus();
    });
  }

  const act = (fn, views) => async (...args) => {
    const result = await fn(...args);
    await refresh(views);
    return result;
  };

  const handlers = {
    decide: act(api.decide, ["pending", "agents", "activity"]),
    revoke: act(api.revoke, ["agents", "activity"]),
    reinstate: act(api.reinstate, ["agents", "activity"]),
    confirm,
  };

  function renderBanner() {
    const banner = $("banner");
    const toolbar = $("toolbar");
    const c = state.connection;
    if (c.state === "connecting") {
      replace(banner, h("p", { class: "banner info" }, "Connecting to valetkeyd…"));
      replace(toolbar);
      return;
    }
    if (c.state === "down") {
      const startError = h("span", { class: "error", role: "alert" });
      const start = h(
        "button",
        {
          type: "button",
          id: "start-daemon",
          class: "primary",
          onclick: async () => {
            start.disabled = true;
            startError.textContent = "";
            try {
              await api.startDaemon();
            } catch (e) {
              startError.textContent = messageOf(e);
              start.disabled = false;
            }
          },
        },
        "Start",
      );
      replace(
        banner,
        h(
          "div",
          { class: "banner down" },
          h("strong", {}, "Daemon not running."),
          " ",
          h("span", { class: "detail" }, c.error ?? ""),
          " ",
          start,
          " ",
          startError,
        ),
      );
      replace(toolbar);
      return;
    }
    const s = c.status;
    const notes = [];
    if (s.paused) notes.push(h("p", { class: "banner paused" }, "Issuing is paused: every agent is refused until you resume."));
    if (s.session_locked)
      notes.push(
        h(
          "p",
          { class: "banner locked" },
          s.on_lock === "refuse"
            ? "Session locked: new requests are refused (user_away)."
            : "Session locked: requests are held until you unlock.",
        ),
      );
    replace(banner, notes);
    const toggle = h(
      "button",
      {
        type: "button",
        id: s.paused ? "resume" : "pause",
        onclick: async () => {
          try {
            await api.setPaused(!s.paused);
          } catch (e) {
            replace(banner, h("p", { class: "banner down", role: "alert" }, messageOf(e)));
          }
        },
      },
      s.paused ? "Resume" : "Pause all agents",
    );
    replace(toolbar, toggle);
  }

  function renderView(name) {
    const panel = $(`view-${name}`);
    const data = { pending: state.consents, agents: [state.agents, state.servers], activity: state.activity }[name];
    const sig = JSON.stringify([connected(), data, status()?.session_locked, status()?.on_lock, state.errors[name]]);
    if (rendered[name] === sig) return;
    rendered[name] = sig;
    if (!connected()) {
      replace(panel, h("p", { class: "empty" }, "Waiting for valetkeyd."));
      return;
    }
    const opts = { now: now(), ...handlers, cards, locked: status()?.session_locked, onLock: status()?.on_lock };
    const error = state.errors[name] ? h("p", { class: "error", role: "alert" }, state.errors[name]) : null;
    const body =
      name === "pending"
        ? renderPending(state.consents, opts)
        : name === "agents"
          ? renderAgents(state.agents, { ...opts, servers: state.servers })
          : renderActivity(state.activity, opts);
    replace(panel, error, body);
  }

  function render() {
    renderBanner();
    const n = connected() ? state.consents.length : 0;
    $("pending-count").textContent = n > 0 ? String(n) : "";
    $("pending-count").setAttribute("aria-label", n > 0 ? `${n} waiting` : "");
    doc.title = n > 0 ? `Valet Key (${n} pending)` : "Valet Key";
    TABS.forEach(renderView);
  }

  function select(tab, focus = false) {
    state.tab = tab;
    for (const t of TABS) {
      const button = $(`tab-${t}`);
      const on = t === tab;
      button.setAttribute("aria-selected", String(on));
      button.tabIndex = on ? 0 : -1;
      $(`view-${t}`).hidden = !on;
      if (on && focus) button.focus();
    }
  }

  // Tabs: click, and arrow keys / Home / End as the ARIA pattern says.
  TABS.forEach((t, i) => {
    const button = $(`tab-${t}`);
    button.addEventListener("click", () => select(t));
    button.addEventListener("keydown", (e) => {
      const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 };
      if (!(e.key in moves)) return;
      e.preventDefault();
      select(TABS[(moves[e.key] + TABS.length) % TABS.length], true);
    });
  });

  const onConnection = (c) => {
    const wasConnected = connected();
    state.connection = c;
    if (c.state === "connected" && !wasConnected) refresh();
    else render();
  };
  const onEvent = (event) => refresh(staleViews(event));

  const ready = (async () => {
    try {
      await subscribe(onEvent, onConnection);
      onConnection(await api.connection());
    } catch (e) {
      onConnection({ state: "down", error: messageOf(e) });
    }
  })();
  // Relative times ("in 59 min") stay honest while the window is open.
  setInterval(() => tick(doc.body, now()), 15_000);
  return { ready, state, refresh, select };
}
