// The chat page (index.html) and the admin page (admin.html) with their hashed
// assets, written into the Python package.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import { precompress } from "./compress";

const page = (name: string) => fileURLToPath(new URL(name, import.meta.url));

export default defineConfig({
  base: "/static/",
  plugins: [precompress()],
  build: {
    outDir: "../src/gptrelay/static",
    emptyOutDir: true,
    target: "es2022",
    // Fonts and images stay files served by the relay (CSP allows data: too, but files cache better).
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1024,
    reportCompressedSize: false,
    rollupOptions: {
      input: {
        index: page("index.html"),
        admin: page("admin.html"),
      },
      output: {
        // What both pages use (app.css's look, the icons, the theme setting, Vite's preload
        // polyfill) goes into one shared .js and .css, cached once for both.
        manualChunks(id) {
          if (/\/src\/(icons|settings)\.ts$|\/src\/styles\/app\.css$|modulepreload-polyfill/.test(id)) return "shared";
        },
      },
    },
  },
});
