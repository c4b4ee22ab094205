import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The TypeScript client is used straight from its sources: no build step for it.
const clientSrc = fileURLToPath(new URL("../client/src/index.ts", import.meta.url));
const clientDir = fileURLToPath(new URL("../client", import.meta.url));

// `npm run dev` / `npm run preview` forward /api, /health and /metrics to the Python
// backend (BACKEND_URL, default http://127.0.0.1:8080), so the app talks to its own
// origin exactly as it does when the backend serves dist/.
const backend = process.env.BACKEND_URL ?? "http://127.0.0.1:8080";
const proxy = {
  "/api": { target: backend, changeOrigin: true },
  "/health": { target: backend, changeOrigin: true },
  "/metrics": { target: backend, changeOrigin: true },
};

export default defineConfig({
  base: "/",
  plugins: [react()],
  resolve: {
    alias: { "@chatbot/client": clientSrc },
    // The client's own dependencies resolve from this app's node_modules, so the app
    // builds whether or not `npm install` ran in frontend/client.
    dedupe: ["eventsource-parser"],
  },
  server: {
    host: "127.0.0.1",
    proxy,
    fs: { allow: [".", clientDir] },
  },
  preview: {
    host: "127.0.0.1",
    proxy,
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
});
