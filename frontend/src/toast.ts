// A short message in the page's #toast element, hidden again after a few seconds.

let timer = 0;

export function toast(text: string, ms = 4000): void {
  const element = document.getElementById("toast");
  if (!element) return;
  element.textContent = text;
  element.hidden = false;
  clearTimeout(timer);
  timer = window.setTimeout(() => {
    element.hidden = true;
  }, ms);
}
