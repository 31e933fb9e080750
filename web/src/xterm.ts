// What the exec terminal (terminal.tsx) and the recordings player
// (player.tsx) share: xterm.js, a well-kept terminal emulator (VS Code's),
// set up to live under the hub's Content-Security-Policy.
//
// The CSP allows styles from the hub's own files only (`style-src 'self'`,
// hub/src/http/web.rs). xterm.js writes its theme colours and cell sizes
// into `<style>` elements it creates, which that policy refuses (a console
// error each, and rows drawn without their sizes and colours; xterm.js has
// no nonce option, xtermjs/xterm.js#4445). Constructed stylesheets
// (`document.adoptedStyleSheets`) are not inline styles and the policy
// allows them (measured in Chromium), so a `<style>` that xterm.js asks for
// is handed out as an inert `<template>` whose text goes to one such sheet,
// dropped again when xterm.js removes the element. Only `<style>` is
// touched, and nothing else in the dashboard creates one. Left as it is:
// 24-bit colours, which xterm.js sets as style attributes (refused, so such
// text keeps the default colour; 16 and 256 colours are classes and work).

import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";

function sheetBackedStyle(doc: Document): HTMLElement {
  const el = doc.createElement("template");
  const sheet = new CSSStyleSheet();
  let text = "";
  Object.defineProperty(el, "textContent", {
    get: () => text,
    set: (v: string | null) => {
      text = v ?? "";
      sheet.replaceSync(text);
    },
  });
  const remove = el.remove.bind(el);
  el.remove = () => {
    doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
    remove();
  };
  doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
  return el;
}

let patched = false;
function patchStyleElements() {
  if (patched) return;
  patched = true;
  const create = Document.prototype.createElement;
  Document.prototype.createElement = function (this: Document, tag: string, options?: ElementCreationOptions) {
    if (String(tag).toLowerCase() === "style") return sheetBackedStyle(this);
    return create.call(this, tag, options);
  } as typeof Document.prototype.createElement;
}

/** Colours of the dashboard's log view (style.css `pre.log`). */
const THEME = { background: "#11161d", foreground: "#d7dde5", cursor: "#d7dde5" };
/** Lines kept above the screen: enough to scroll back through a session's
 *  recent output, bounded so a chatty command cannot grow the page. */
export const SCROLLBACK = 5000;

/** A terminal opened in `el`, with a fit addon (for the live one). */
export function openTerminal(el: HTMLElement, opts: { cols?: number; rows?: number; input: boolean }) {
  patchStyleElements();
  const term = new Terminal({
    cols: opts.cols ?? 80,
    rows: opts.rows ?? 24,
    theme: THEME,
    scrollback: SCROLLBACK,
    disableStdin: !opts.input,
    cursorBlink: opts.input,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    fontSize: 13,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(el);
  return { term, fit };
}

/** A `log` reply's bytes as xterm.js takes them: text as it is, `b64`
 *  decoded (xterm.js joins a UTF-8 sequence split across two chunks). */
export function chunkBytes(c: { text?: string | null; b64?: string | null }): string | Uint8Array {
  if (c.b64 != null) return Uint8Array.from(atob(c.b64), (ch) => ch.charCodeAt(0));
  return c.text ?? "";
}
