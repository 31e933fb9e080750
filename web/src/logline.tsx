// One log line as the viewer keeps and draws it: ANSI colours parsed once
// (anser, to segments drawn as Preact elements: no HTML is ever parsed),
// search matches marked, JSON pretty-printed on demand.

import Anser from "anser";
import type { LogChunk } from "./types";

export interface Line {
  n: number;
  stream: "stdout" | "stderr";
  /** Docker's RFC 3339 prefix, when asked with `timestamps`. */
  ts: string;
  /** The text without ANSI escapes (what search, filter and download see). */
  text: string;
  /** Whether the chunk was not UTF-8 (decoded with replacement characters). */
  binary: boolean;
  /** Coloured parts; null when the line has no escape sequence. */
  parts: Part[] | null;
}

interface Part {
  text: string;
  fg: string;
  bg: string;
  bold: boolean;
}

/** The lines of one `log` reply (whole lines of one stream). */
export function chunkLines(c: LogChunk, timestamps: boolean, next: () => number): Line[] {
  const stream = c.stream === "stderr" ? "stderr" : "stdout";
  let raw = "";
  let binary = false;
  if (c.text != null) raw = c.text;
  else if (c.b64 != null) {
    const bytes = Uint8Array.from(atob(c.b64), (ch) => ch.charCodeAt(0));
    raw = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
    binary = true;
  }
  return raw
    .replace(/\n$/, "")
    .split("\n")
    .map((l) => {
      let ts = "";
      if (timestamps) {
        const sp = l.indexOf(" ");
        if (sp > 0 && /^\d{4}-\d\d-\d\dT/.test(l)) {
          ts = l.slice(0, sp);
          l = l.slice(sp + 1);
        }
      }
      const line: Line = { n: next(), stream, ts, text: l, binary, parts: null };
      if (l.includes("\x1b")) {
        const parts = Anser.ansiToJson(l, { remove_empty: true }).map((e) => ({
          text: e.content,
          fg: e.fg,
          bg: e.bg,
          bold: e.decorations.includes("bold"),
        }));
        line.parts = parts;
        line.text = parts.map((p) => p.text).join("");
      }
      return line;
    });
}

/** `text` with each case-insensitive occurrence of `needle` in a `<mark>`. */
function marked(text: string, needle: string) {
  if (!needle) return text;
  const out = [];
  const low = text.toLowerCase();
  let at = 0;
  for (let i = low.indexOf(needle); i >= 0; i = low.indexOf(needle, at)) {
    if (i > at) out.push(text.slice(at, i));
    out.push(<mark>{text.slice(i, i + needle.length)}</mark>);
    at = i + needle.length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

function prettyJson(text: string): string | null {
  const t = text.trim();
  if (!t.startsWith("{") && !t.startsWith("[")) return null;
  try {
    return JSON.stringify(JSON.parse(t), null, 2);
  } catch {
    return null;
  }
}

export function LogRow(props: { line: Line; search: string; showTs: boolean; json: boolean }) {
  const { line, search } = props;
  const pretty = props.json ? prettyJson(line.text) : null;
  let body;
  if (pretty != null) body = marked(pretty, search);
  else if (line.parts)
    body = line.parts.map((p, i) => (
      <span
        key={i}
        class={p.bold ? "b" : undefined}
        // Set through the CSSOM by Preact, which the page's CSP allows.
        style={{ color: p.fg ? `rgb(${p.fg})` : undefined, background: p.bg ? `rgb(${p.bg})` : undefined }}
      >
        {marked(p.text, search)}
      </span>
    ));
  else body = marked(line.text, search);
  const hit = search && line.text.toLowerCase().includes(search);
  return (
    <div class={`${line.stream}${hit ? " hit" : ""}${pretty != null ? " json" : ""}`}>
      {props.showTs && line.ts && <span class="ts">{line.ts} </span>}
      {line.binary && <span class="badge" title="not UTF-8: shown with replacement characters">bytes</span>}
      {body}
    </div>
  );
}
