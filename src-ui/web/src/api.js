// The only door to the daemon: the app's Tauri commands, each a thin
// forward to one control-socket method (see src-ui/src/commands.rs).
// Errors arrive as {kind, code, name, message}; `message` is written for
// people and says what to do next.

import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";

export const EVENT = "daemon://event";
export const CONNECTION = "daemon://connection";

export const api = {
  connection: () => invoke("connection"),
  startDaemon: () => invoke("start_daemon"),
  status: () => invoke("status"),
  consents: async () => (await invoke("consent_list")).consents,
  decide: (id, decision, scopes) =>
    invoke("consent_decide", { params: scopes ? { id, decision, scopes } : { id, decision } }),
  agents: async () => (await invoke("agents_list")).agents,
  reinstate: (name) => invoke("agents_reinstate", { name }),
  revoke: (target) => invoke("revoke", { params: { target } }),
  setPaused: (paused) => invoke("set_paused", { paused }),
  activity: async (limit = 100) => (await invoke("activity_list", { limit })).entries,
  mcpServers: async () => (await invoke("mcp_list")).servers,
};

/** Calls `onEvent(event)` for each daemon event and `onConnection(state)`
 * when the link's state changes. Resolves once both are listening. */
export function subscribe(onEvent, onConnection) {
  return Promise.all([
    listen(EVENT, (e) => onEvent(e.payload)),
    listen(CONNECTION, (e) => onConnection(e.payload)),
  ]);
}
