// KaTeX and its stylesheet: a chunk of its own, loaded the first time a reply has math.

import "katex/dist/katex.min.css";
import katex from "katex";

export function renderTex(tex: string, display: boolean): string {
  return katex.renderToString(tex, {
    displayMode: display,
    throwOnError: false,
    strict: "ignore",
    trust: false,
    output: "htmlAndMathml",
  });
}
