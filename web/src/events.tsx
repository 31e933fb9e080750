// The fleet-wide events feed: `events` with no target streams every agent's
// container events and the agents' own (online, offline, conflict).

import { useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "./api";
import { Link, agentHref, containerHref } from "./link";
import type { ErrorBody, FleetEvent } from "./types";

/** Events kept in the page: a busy fleet cannot grow the DOM without bound. */
const MAX_EVENTS = 500;

interface Row {
  n: number;
  server: string;
  ev: FleetEvent;
}

export function describe(ev: FleetEvent): string {
  const parts: string[] = [];
  if (ev.image) parts.push(ev.image);
  if (ev.exit_code != null) parts.push(`exit ${ev.exit_code}`);
  if (ev.health) parts.push(`health ${ev.health}`);
  if (ev.signal) parts.push(`signal ${ev.signal}`);
  return parts.join(" · ");
}

export function Events(props: { api: Api }) {
  const [rows, setRows] = useState<Row[]>([]);
  const [state, setState] = useState("connecting");
  const [paused, setPaused] = useState<Row[] | null>(null);
  const [server, setServer] = useState("");
  const [container, setContainer] = useState("");
  const [action, setAction] = useState("");
  const n = useRef(0);
  useEffect(() => {
    let live = true;
    let cancel: (() => void) | null = null;
    props.api
      .send(
        "events",
        {},
        {},
        (r) => {
          if (!live) return;
          if (r.type === "event") {
            const row = { n: n.current++, server: r.server ?? "", ev: r.data as FleetEvent };
            setRows((old) => [row, ...old].slice(0, MAX_EVENTS));
            setState("live");
          } else if (r.type === "end") setState("ended");
          else if (r.type === "error") setState(`error: ${(r.data as ErrorBody).message}`);
        },
        true,
      )
      .then((c) => {
        if (!live) return c();
        cancel = c;
        setState((s) => (s === "connecting" ? "live" : s));
      })
      .catch((e) => setState(`error: ${e instanceof Error ? e.message : String(e)}`));
    return () => {
      live = false;
      cancel?.();
    };
  }, [props.api]);
  const shown = (paused ?? rows).filter((r) => {
    if (server && !r.server.toLowerCase().includes(server.toLowerCase())) return false;
    if (container && !(r.ev.container ?? "").toLowerCase().includes(container.toLowerCase())) {
      return false;
    }
    if (action && `${r.ev.kind} ${r.ev.action}` !== action && r.ev.action !== action) return false;
    return true;
  });
  const actions = [...new Set(rows.map((r) => `${r.ev.kind} ${r.ev.action}`))].sort();
  return (
    <section>
      <h2>Events</h2>
      <p class="muted">
        {paused ? "paused (newer events are kept, shown on resume)" : state} · newest first · last{" "}
        {MAX_EVENTS} kept
      </p>
      <div class="toolbar">
        <input
          aria-label="Server"
          placeholder="Server"
          value={server}
          onInput={(e) => setServer(e.currentTarget.value)}
        />
        <input
          aria-label="Container"
          placeholder="Container"
          value={container}
          onInput={(e) => setContainer(e.currentTarget.value)}
        />
        <select aria-label="Kind and action" value={action} onChange={(e) => setAction(e.currentTarget.value)}>
          <option value="">every kind and action</option>
          {actions.map((a) => (
            <option key={a} value={a}>
              {a}
            </option>
          ))}
        </select>
        <button type="button" onClick={() => setPaused(paused ? null : rows)}>
          {paused ? "Resume" : "Pause"}
        </button>
      </div>
      <table aria-label="Events">
        <thead>
          <tr>
            <th>Time</th>
            <th>Server</th>
            <th>Kind</th>
            <th>Action</th>
            <th>Container</th>
            <th>Detail</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((r) => (
            <tr key={r.n}>
              <td class="t">{new Date(r.ev.time_ms).toLocaleTimeString()}</td>
              <td>{r.server && <Link href={agentHref(r.server)}>{r.server}</Link>}</td>
              <td>{r.ev.kind}</td>
              <td>
                {r.ev.action}
                {r.ev.late && <span title="happened while the agent was out of reach">{" (late)"}</span>}
              </td>
              <td>
                {r.ev.container && r.server ? (
                  <Link href={containerHref(r.server, r.ev.container)}>{r.ev.container}</Link>
                ) : (
                  ""
                )}
              </td>
              <td>{describe(r.ev)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
