// The window is served from the binary (tauri `custom-protocol`), so the
// build is a plain static bundle: no inline scripts (the CSP forbids them)
// and no source maps.
import { defineConfig } from "vite";

export default defineConfig({
  clearScreen: false,
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "safari15",
    sourcemap: false,
    modulePreload: { polyfill: false },
  },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.js"],
  },
});
