import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// The output is embedded in the hub binary (hub/src/http/web.rs) and
// committed: it must be the same bytes on every machine (scripts/check-web.sh).
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    // No data: URIs and no inline anything: the CSP allows 'self' only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
