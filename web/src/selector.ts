// Label selectors as the CLI reads them (shared/src/labels.rs `Selector`):
// `env=prod,role=web`; a comma is AND, `k=v` an exact value, `k` alone that
// the key exists. Keys and values: letters, digits, '-', '_', '.', '/', at
// most 128 characters; a key may not be empty.

import type { Labels } from "./types";

export type Selector = [string, string | null][];

const MAX_LABEL_LEN = 128;

function check(part: string, what: "key" | "value") {
  if (!part && what === "key") throw new Error("a label key may not be empty");
  if (part.length > MAX_LABEL_LEN) throw new Error(`label ${what} "${part}" is longer than ${MAX_LABEL_LEN}`);
  if (!/^[A-Za-z0-9._/-]*$/.test(part)) {
    throw new Error(`label ${what} "${part}" may only hold letters, digits, '-', '_', '.' and '/'`);
  }
}

/** Parse a selector; throws an Error whose message says what is wrong. */
export function parseSelector(text: string): Selector {
  const terms: Selector = [];
  for (const part of text.split(",").map((p) => p.trim()).filter((p) => p)) {
    const eq = part.indexOf("=");
    if (eq < 0) {
      check(part, "key");
      terms.push([part, null]);
    } else {
      const [k, v] = [part.slice(0, eq), part.slice(eq + 1)];
      check(k, "key");
      check(v, "value");
      terms.push([k, v]);
    }
  }
  if (!terms.length) throw new Error("the selector is empty");
  return terms;
}

export function matches(sel: Selector, labels: Labels): boolean {
  return sel.every(([k, v]) => Object.hasOwn(labels, k) && (v === null || labels[k] === v));
}
