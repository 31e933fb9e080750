// The "Logs" tab: follows a container's logs (`logs` with `follow`), with
// pause and resume (lines buffered meanwhile, none lost), tail and since,
// stdout/stderr, timestamps, search, filter, ANSI colours, JSON on demand,
// download, and a bounded number of DOM rows.

import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { Api } from "./api";
import { type Line, LogRow, chunkLines } from "./logline";
import type { ErrorBody, LogChunk } from "./types";

/** Lines drawn in the page: a chatty container cannot grow the DOM without
 *  bound; older ones stay in memory for search and download. */
const MAX_ROWS = 2000;
/** Lines kept in memory (what search, filter and download see), including
 *  those arriving while paused: about 10 MB at 500 bytes a line. */
const MAX_KEPT = 20000;
/** Text kept for Download beyond those lines (older lines, as plain text):
 *  a container at 5,000 lines a second for minutes loses none of them. */
const MAX_ARCHIVE_BYTES = 64 * 1024 * 1024;
/** Lines asked for when the view opens, before following. */
const DEFAULT_TAIL = "200";

interface Query {
  tail: string;
  since: string;
  timestamps: boolean;
}

/** `since` as the Docker API takes it (Unix seconds): a look-back such as
 *  `90s`, `15m`, `2h`, `3d`, or a date-time. Null when empty, NaN when wrong. */
function sinceSeconds(text: string): number | null {
  const t = text.trim();
  if (!t) return null;
  const m = /^(\d+)\s*([smhd]?)$/.exec(t);
  if (m) {
    const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2]] ?? 1;
    return Math.floor(Date.now() / 1000) - Number(m[1]) * unit;
  }
  const at = Date.parse(t);
  return Number.isNaN(at) ? Number.NaN : Math.floor(at / 1000);
}

function payload(container: string, q: Query): object | string {
  const p: Record<string, unknown> = { container, follow: true, timestamps: q.timestamps };
  const tail = q.tail.trim();
  if (tail === "all") p.tail = "all";
  else if (tail) {
    if (!/^\d+$/.test(tail)) return `tail: a number of lines or "all", not ${JSON.stringify(tail)}`;
    p.tail = Number(tail);
  }
  const since = sinceSeconds(q.since);
  if (since != null && Number.isNaN(since)) return `since: e.g. 15m, 2h or a date, not ${JSON.stringify(q.since)}`;
  if (since != null) p.since = since;
  return p;
}

/** A line as Download writes it. */
function asText(l: Line): string {
  return `${l.ts ? `${l.ts} ` : ""}${l.stream === "stderr" ? "[stderr] " : ""}${l.text}\n`;
}

export function Logs(props: { api: Api; agent: string; container: string }) {
  const [query, setQuery] = useState<Query>({ tail: DEFAULT_TAIL, since: "", timestamps: false });
  const [form, setForm] = useState<Query>(query);
  const [state, setState] = useState("connecting");
  const [paused, setPaused] = useState(false);
  const [streams, setStreams] = useState("both");
  const [search, setSearch] = useState("");
  const [filter, setFilter] = useState("");
  const [json, setJson] = useState(false);
  const [, setVersion] = useState(0);
  const kept = useRef<Line[]>([]);
  const held = useRef<Line[]>([]);
  const dropped = useRef(0);
  // Lines past MAX_KEPT, as Download writes them, oldest first.
  const archive = useRef<string[]>([]);
  const archived = useRef(0);
  const pausedRef = useRef(false);
  const box = useRef<HTMLPreElement>(null);
  // Stay at the newest line unless the reader scrolled up to read.
  const stick = useRef(true);

  const keep = (add: Line[]) => {
    const k = kept.current;
    k.push(...add);
    if (k.length > MAX_KEPT) {
      for (const l of k.splice(0, k.length - MAX_KEPT)) {
        const text = asText(l);
        archive.current.push(text);
        archived.current += text.length;
      }
      while (archived.current > MAX_ARCHIVE_BYTES && archive.current.length > 0) {
        archived.current -= archive.current.shift()?.length ?? 0;
        dropped.current += 1;
      }
    }
  };

  useEffect(() => {
    let n = 0;
    let frame = 0;
    let live = true;
    kept.current = [];
    held.current = [];
    dropped.current = 0;
    archive.current = [];
    archived.current = 0;
    setVersion((v) => v + 1);
    let pending: Line[] = [];
    // Replies arrive in bursts: the DOM is updated at most once a frame.
    const flush = () => {
      frame = 0;
      const add = pending;
      pending = [];
      if (pausedRef.current) held.current.push(...add);
      else keep(add);
      // Held lines count against the same memory bound.
      if (held.current.length > MAX_KEPT) {
        dropped.current += held.current.length - MAX_KEPT;
        held.current.splice(0, held.current.length - MAX_KEPT);
      }
      setVersion((v) => v + 1);
    };
    const p = payload(props.container, query);
    if (typeof p === "string") {
      setState(`error: ${p}`);
      return;
    }
    setState("connecting");
    let cancel: (() => void) | null = null;
    props.api
      .send(
        "logs",
        { server: props.agent },
        p,
        (r) => {
          if (!live) return;
          if (r.type === "log") {
            pending.push(...chunkLines(r.data as LogChunk, query.timestamps, () => n++));
            if (!frame) frame = requestAnimationFrame(flush);
            setState("following");
          } else if (r.type === "end") setState("ended (the container stopped)");
          else if (r.type === "error") setState(`error: ${(r.data as ErrorBody).message}`);
        },
        true,
      )
      .then((c) => (live ? (cancel = c) : c()))
      .catch((e) => setState(`error: ${e instanceof Error ? e.message : String(e)}`));
    return () => {
      live = false;
      if (frame) cancelAnimationFrame(frame);
      cancel?.();
    };
  }, [props.api, props.agent, props.container, query]);

  useLayoutEffect(() => {
    const el = box.current;
    if (el && stick.current && !paused) el.scrollTop = el.scrollHeight;
  });

  const resume = () => {
    pausedRef.current = false;
    setPaused(false);
    keep(held.current);
    held.current = [];
    setVersion((v) => v + 1);
  };
  const needle = search.toLowerCase();
  const f = filter.toLowerCase();
  const matching = kept.current.filter(
    (l) => (streams === "both" || l.stream === streams) && (!f || l.text.toLowerCase().includes(f)),
  );
  const shown = matching.slice(-MAX_ROWS);
  const hits = needle ? matching.filter((l) => l.text.toLowerCase().includes(needle)).length : 0;
  const download = () => {
    const text = archive.current.join("") + kept.current.map(asText).join("");
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    a.download = `${props.agent}-${props.container}.log`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };

  return (
    <section class="logs" aria-label="Logs">
      <form
        class="bar"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery({ ...form });
        }}
      >
        <label>
          Tail <input aria-label="Tail" size={5} value={form.tail} onInput={(e) => setForm({ ...form, tail: e.currentTarget.value })} />
        </label>
        <label>
          Since{" "}
          <input
            aria-label="Since"
            size={10}
            placeholder="15m, 2h, date"
            value={form.since}
            onInput={(e) => setForm({ ...form, since: e.currentTarget.value })}
          />
        </label>
        <label>
          <input
            type="checkbox"
            checked={form.timestamps}
            onChange={(e) => {
              const next = { ...form, timestamps: e.currentTarget.checked };
              setForm(next);
              setQuery(next);
            }}
          />{" "}
          Timestamps
        </label>
        <button type="submit">Reload</button>
        <button
          type="button"
          onClick={() => {
            if (paused) resume();
            else {
              pausedRef.current = true;
              setPaused(true);
            }
          }}
        >
          {paused ? "Resume" : "Pause"}
        </button>
        <button type="button" onClick={download}>
          Download
        </button>
      </form>
      <div class="bar">
        <input aria-label="Search" placeholder="Search (highlights)" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        <input aria-label="Filter" placeholder="Filter (hides the rest)" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        <select aria-label="Streams" value={streams} onChange={(e) => setStreams(e.currentTarget.value)}>
          <option value="both">stdout + stderr</option>
          <option value="stdout">stdout</option>
          <option value="stderr">stderr</option>
        </select>
        <label>
          <input type="checkbox" checked={json} onChange={(e) => setJson(e.currentTarget.checked)} /> Pretty JSON
        </label>
      </div>
      <p class="muted" role="status">
        {paused ? `paused, ${held.current.length} new lines held` : state} · {kept.current.length} lines loaded
        {needle && ` · ${hits} matching "${search}"`}
        {matching.length > shown.length && ` · ${matching.length - shown.length} older lines not drawn (the last ${MAX_ROWS} are)`}
        {archive.current.length > 0 &&
          ` · ${archive.current.length} older lines kept for Download only (search and filter see the last ${MAX_KEPT})`}
        {dropped.current > 0 && ` · ${dropped.current} oldest lines dropped`} ·{" "}
        <span class="stderr">stderr</span> in red
      </p>
      <pre
        class="log"
        ref={box}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {shown.map((l) => (
          <LogRow key={l.n} line={l} search={needle} showTs={query.timestamps} json={json} />
        ))}
      </pre>
    </section>
  );
}
