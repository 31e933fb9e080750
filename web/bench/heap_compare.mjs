// Compare V8 heap snapshots (.heapsnapshot files, e.g. from the dashboard
// bench's DASH_HEAP_SNAPSHOTS): `node web/bench/heap_compare.mjs A B [C...]`.
// Prints each file's node count and summed self size (and the part that is
// the bench's own window.__bench.frames, 0 when the page ran without INIT),
// the self-size change by node type and constructor from the first file to
// the last, and each file's biggest objects with one retainer chain
// (first non-weak retainer, 8 steps). Self sizes only: no dominator tree.
import fs from "node:fs";
function load(file) {
  const j = JSON.parse(fs.readFileSync(file, "utf8"));
  const m = j.snapshot.meta;
  const nf = m.node_fields, ef = m.edge_fields;
  const N = nf.length, E = ef.length;
  const types = m.node_types[0], etypes = m.edge_types[0];
  const iType = nf.indexOf("type"), iName = nf.indexOf("name"), iSize = nf.indexOf("self_size"), iEc = nf.indexOf("edge_count"), iId = nf.indexOf("id");
  const eType = ef.indexOf("type"), eName = ef.indexOf("name_or_index"), eTo = ef.indexOf("to_node");
  const nodes = j.nodes, edges = j.edges, strings = j.strings;
  const n = nodes.length / N;
  const firstEdge = new Uint32Array(n + 1);
  for (let i = 0, e = 0; i < n; i++) { firstEdge[i] = e; e += nodes[i * N + iEc] * E; }
  firstEdge[n] = edges.length;
  const retainer = new Int32Array(n).fill(-1), retEdge = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) for (let e = firstEdge[i]; e < firstEdge[i + 1]; e += E) {
    const t = edges[e + eTo] / N; const et = etypes[edges[e + eType]];
    if (et === "weak") continue;
    if (retainer[t] < 0) { retainer[t] = i; retEdge[t] = e; }
  }
  const name = (i) => { const t = types[nodes[i * N + iType]]; const s = strings[nodes[i * N + iName]]; return `${t}:${String(s).slice(0, 60)}`; };
  const edgeName = (e) => { const et = etypes[edges[e + eType]]; const v = edges[e + eName]; return et === "element" || et === "hidden" ? `[${v}]` : String(strings[v]).slice(0, 40); };
  const agg = new Map(); let total = 0;
  for (let i = 0; i < n; i++) { const k = name(i).replace(/^(string|concatenated string|sliced string|number|code|hidden|array):.*/, "$1"); const s = nodes[i * N + iSize]; total += s; const a = agg.get(k) ?? { c: 0, s: 0 }; a.c++; a.s += s; agg.set(k, a); }
  const big = [];
  for (let i = 0; i < n; i++) big.push([nodes[i * N + iSize], i]);
  big.sort((a, b) => b[0] - a[0]);
  const chain = (i) => { const out = []; let c = i; for (let d = 0; d < 8 && retainer[c] >= 0; d++) { out.push(`${edgeName(retEdge[c])}<-${name(retainer[c])}`); c = retainer[c]; } return out.join(" "); };
  // The bench's own window.__bench.frames: the Array and its elements.
  let frames = 0;
  for (let i = 0; i < n; i++) if (retEdge[i] >= 0 && edgeName(retEdge[i]) === "frames") {
    frames += nodes[i * N + iSize];
    for (let e = firstEdge[i]; e < firstEdge[i + 1]; e += E) if (edgeName(e) === "elements") frames += nodes[edges[e + eTo]/N * N + iSize];
  }
  return { frames, agg, total, n, big: big.slice(0, 15).map(([s, i]) => ({ s, what: name(i), chain: chain(i) })) };
}
const files = process.argv.slice(2);
const snaps = files.map(load);
for (const [k, s] of files.map((f, i) => [f, snaps[i]])) console.log(`${k}: ${s.n} nodes, ${(s.total / 1048576).toFixed(3)} MiB self total, window.__bench.frames ${s.frames} B, the rest ${((s.total - s.frames) / 1048576).toFixed(3)} MiB`);
const a = snaps[0], b = snaps[snaps.length - 1];
const keys = new Set([...a.agg.keys(), ...b.agg.keys()]);
const rows = [...keys].map((k) => { const x = a.agg.get(k) ?? { c: 0, s: 0 }, y = b.agg.get(k) ?? { c: 0, s: 0 }; return [k, y.s - x.s, y.c - x.c, x.s, y.s]; });
rows.sort((p, q) => Math.abs(q[1]) - Math.abs(p[1]));
console.log("\nby (type:name), self size delta first -> last (bytes, count delta, first, last):");
for (const r of rows.slice(0, 25)) console.log(`${String(r[1]).padStart(9)} ${String(r[2]).padStart(7)} ${String(r[3]).padStart(9)} ${String(r[4]).padStart(9)}  ${r[0]}`);
for (const [f, s] of files.map((f, i) => [f, snaps[i]])) { console.log(`\nbiggest objects in ${f}:`); for (const o of s.big.slice(0, 8)) console.log(`${String(o.s).padStart(9)} ${o.what}  ${o.chain}`); }
