// `fail()` inside until(): keep waiting.
globalThis.fail = () => {
  throw new Error("not yet");
};

// Loads the real index.html into jsdom and starts the real app against
// Tauri's IPC mock: every invoke the page makes is recorded and answered by
// `handlers`, and daemon events are sent with the real `emit`.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import { api, subscribe, EVENT, CONNECTION } from "../src/api.js";
import { startApp } from "../src/app.js";
import { NOW } from "./fixtures.js";

const html = readFileSync(resolve(__dirname, "../index.html"), "utf8");

export function mount(handlers) {
  document.documentElement.innerHTML = html.replace(/<!doctype html>/i, "");
  const calls = [];
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args });
      const h = handlers[cmd];
      if (!h) throw { kind: "protocol", message: `unexpected command ${cmd}` };
      return typeof h === "function" ? h(args) : h;
    },
    { shouldMockEvents: true },
  );
  const app = startApp(document, api, subscribe, { now: () => NOW });
  return { app, calls, of: (cmd) => calls.filter((c) => c.cmd === cmd) };
}

export const daemonEvent = (payload) => emit(EVENT, payload);
export const connectionEvent = (payload) => emit(CONNECTION, payload);
export { clearMocks };

/** Waits until `fn` stops throwing (DOM updates are async). */
export async function until(fn, ms = 1000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return fn();
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
export const byText = (text, sel = "button") => {
  const el = $$(sel).find((e) => e.textContent.trim() === text);
  if (!el) throw new Error(`no ${sel} with text ${JSON.stringify(text)}`);
  return el;
};
