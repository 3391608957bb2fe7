// The browser client: one standalone ES module, /static/gptrelay.js, with no imports,
// for pages on other sites to `import { streamChat } from "https://relay/static/gptrelay.js"`.
import { defineConfig } from "vite";
import { precompress } from "./compress";

export default defineConfig({
  publicDir: false,
  plugins: [precompress(/gptrelay\.js$/)],
  build: {
    outDir: "../src/gptrelay/static",
    emptyOutDir: false,
    target: "es2020",
    minify: false,
    reportCompressedSize: false,
    lib: {
      entry: "src/client/gptrelay.ts",
      formats: ["es"],
      fileName: () => "gptrelay.js",
    },
  },
});
