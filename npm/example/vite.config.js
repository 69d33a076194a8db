import { defineConfig } from "vite";

export default defineConfig({
  // The package finds its worker and nibble.wasm with new URL(..., import.meta.url): the dev
  // server's dependency pre-bundling would move the module away from them.
  optimizeDeps: { exclude: ["@nibble-ml/nibble"] },
  // The worker is an ES module (it imports the Go runtime).
  worker: { format: "es" },
});
