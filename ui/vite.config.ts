/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The UI is served by the gateway under /ui/. The production build goes straight into
// the Python package (gateway/ui_dist) so `pip install` ships it and no Node is needed.
// `npm run dev` proxies the API paths to a gateway on 127.0.0.1:8080.
const api = ["/spans", "/traces", "/threads", "/stats", "/events", "/experiments", "/models", "/v1", "/healthz"];

export default defineConfig({
  base: "/ui/",
  plugins: [react()],
  build: {
    outDir: "../gateway/ui_dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: Object.fromEntries(api.map((p) => [p, "http://127.0.0.1:8080"])),
  },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
