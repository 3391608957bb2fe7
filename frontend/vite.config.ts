// The chat page: index.html and its hashed assets, written into the Python package.
import { defineConfig } from "vite";
import { precompress } from "./compress";

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
  },
});
