// The browser client: one standalone ES module, /static/gptrelay.js, with no imports,
// for pages on other sites to `import { streamChat } from "https://relay/static/gptrelay.js"`.
import { defineConfig } from "vite";
import { precompress } from "./compress";

const BANNER = `// @ts-self-types="./gptrelay.d.ts"
/**
 * gptrelay's browser client: stream replies from a gptrelay relay's POST /chat.
 *
 *   import { streamChat } from "https://YOUR-RELAY/static/gptrelay.js";
 *
 * Types: /static/gptrelay.d.ts. No imports, no dependencies.
 */
`;

export default defineConfig({
  publicDir: false,
  plugins: [
    {
      name: "gptrelay-banner",
      generateBundle(_options, bundle) {
        for (const chunk of Object.values(bundle)) {
          if (chunk.type === "chunk") chunk.code = BANNER + chunk.code;
        }
      },
    },
    precompress(/gptrelay\.js$/),
  ],
  build: {
    outDir: "../src/gptrelay/static",
    emptyOutDir: false,
    target: "es2022",
    minify: false,
    reportCompressedSize: false,
    lib: {
      entry: "src/client/gptrelay.ts",
      formats: ["es"],
      fileName: () => "gptrelay.js",
    },
  },
});
