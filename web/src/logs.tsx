import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { Api } from "./api";
import { Link, agentHref } from "./link";
import type { ErrorBody, LogChunk } from "./types";

/** Log lines kept in the page: older ones are dropped so a chatty container
 *  cannot grow the DOM without bound. */
const MAX_ROWS = 2000;
/** Lines asked for when the view opens, before following. */
const TAIL = 200;

interface Line {
  n: number;
  stream: "stdout" | "stderr";
  text: string;
}

function decode(chunk: LogChunk): string {
  if (chunk.text != null) return chunk.text;
  if (chunk.b64 != null) {
    const bytes = Uint8Array.from(atob(chunk.b64), (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  }
  return "";
}

function Logs(props: { api: Api; agent: string; container: string }) {
  const [lines, setLines] = useState<Line[]>([]);
  const [state, setState] = useState("connecting");
  const pending = useRef<Line[]>([]);
  const box = useRef<HTMLPreElement>(null);
  // Stay at the newest line unless the reader scrolled up to read.
  const stick = useRef(true);
  useLayoutEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [lines]);
  useEffect(() => {
    let n = 0;
    let frame = 0;
    let live = true;
    setLines([]);
    // Many replies a second arrive in bursts: the DOM is updated once a frame.
    const flush = () => {
      frame = 0;
      const add = pending.current;
      pending.current = [];
      setLines((old) => old.concat(add).slice(-MAX_ROWS));
    };
    let cancel: (() => void) | null = null;
    props.api
      .send(
        "logs",
        { server: props.agent },
        { container: props.container, follow: true, tail: TAIL },
        (r) => {
          if (!live) return;
          if (r.type === "log") {
            const c = r.data as LogChunk;
            const stream = c.stream === "stderr" ? "stderr" : "stdout";
            for (const text of decode(c).replace(/\n$/, "").split("\n")) {
              pending.current.push({ n: n++, stream, text });
            }
            if (!frame) frame = requestAnimationFrame(flush);
            setState("following");
          } else if (r.type === "end") setState("ended");
          else if (r.type === "error") setState(`error: ${(r.data as ErrorBody).message}`);
        },
        true,
      )
      .then((c) => (live ? (cancel = c) : c()))
      .catch((e) => setState(`error: ${e instanceof Error ? e.message : String(e)}`));
    return () => {
      live = false;
      if (frame) cancelAnimationFrame(frame);
      pending.current = [];
      cancel?.();
    };
  }, [props.api, props.agent, props.container]);
  return (
    <section class="logs" aria-label="Logs">
      <h3>Logs</h3>
      <p class="muted">
        {state} · last {MAX_ROWS} lines kept · <span class="stderr">stderr</span> in red
      </p>
      <pre
        class="log"
        ref={box}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {lines.map((l) => (
          <div key={l.n} class={l.stream}>
            {l.text}
          </div>
        ))}
      </pre>
    </section>
  );
}

export function Container(props: { api: Api; agent: string; name: string }) {
  return (
    <section>
      <p class="crumbs">
        <Link href="/">Fleet</Link> / <Link href={agentHref(props.agent)}>{props.agent}</Link> /{" "}
        {props.name}
      </p>
      <h2>{props.name}</h2>
      <Logs api={props.api} agent={props.agent} container={props.name} />
    </section>
  );
}
