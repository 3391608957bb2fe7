// Updates a rendered reply in place: nodes that did not change are left alone,
// so a streaming reply grows without flicker, and a code block or formula that
// is already finished is never rebuilt (a selection inside it survives).

/** Makes `target`'s children look like the HTML `html`, touching as little as possible. */
export function morphHtml(target: Element, html: string): void {
  const template = document.createElement("template");
  template.innerHTML = html;
  morphChildren(target, template.content);
}

function morphChildren(target: Node, source: Node): void {
  const before = Array.from(target.childNodes);
  const after = Array.from(source.childNodes);
  after.forEach((next, index) => {
    const old = before[index];
    if (!old) {
      target.appendChild(next);
    } else if (old.nodeType !== next.nodeType || old.nodeName !== next.nodeName) {
      target.replaceChild(next, old);
    } else if (old.nodeType === Node.ELEMENT_NODE) {
      if (!old.isEqualNode(next)) {
        syncAttributes(old as Element, next as Element);
        morphChildren(old, next);
      }
    } else if (old.nodeValue !== next.nodeValue) {
      old.nodeValue = next.nodeValue;
    }
  });
  for (let index = after.length; index < before.length; index++) {
    target.removeChild(before[index]);
  }
}

function syncAttributes(old: Element, next: Element): void {
  for (const { name } of Array.from(old.attributes)) {
    if (!next.hasAttribute(name)) old.removeAttribute(name);
  }
  for (const { name, value } of Array.from(next.attributes)) {
    if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  }
}
