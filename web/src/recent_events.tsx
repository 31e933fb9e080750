// The events of one agent, or of one of its containers: `events` with
// `server` (and `container`) and `since: "1h"`, so the page shows what the
// hub kept from the last hour (a crash before the page opened) and then
// what comes live. Newest first.

import { useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "./api";
import { describe } from "./events";
import type { ErrorBody, FleetEvent } from "./types";

/** Rows kept: the hub replays at most 64 per agent, and live ones add up. */
const MAX_ROWS = 200;
/** How far back the hub is asked to replay (it keeps at most 64 per agent). */
const SINCE = "1h";

interface Row {
  n: number;
  ev: FleetEvent;
}

export function EventList(props: { api: Api; server: string; container?: string }) {
  const [rows, setRows] = useState<Row[]>([]);
  const [state, setState] = useState("connecting");
  const n = useRef(0);
  useEffect(() => {
    let live = true;
    let cancel: (() => void) | null = null;
    setRows([]);
    const payload: Record<string, unknown> = { since: SINCE };
    if (props.container) payload.container = props.container;
    props.api
      .send(
        "events",
        { server: props.server },
        payload,
        (r) => {
          if (!live) return;
          if (r.type === "event") {
            const row = { n: n.current++, ev: r.data as FleetEvent };
            setRows((old) => [row, ...old].slice(0, MAX_ROWS));
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
      .catch((e) => live && setState(`error: ${e instanceof Error ? e.message : String(e)}`));
    return () => {
      live = false;
      cancel?.();
    };
  }, [props.api, props.server, props.container]);
  const what = props.container ? props.container : props.server;
  return (
    <section aria-label={`Events of ${what}`}>
      <p class="muted">
        {state} · the last hour the hub kept, then live · newest first · last {MAX_ROWS} kept
      </p>
      <table aria-label="Events">
        <thead>
          <tr>
            <th>Time</th>
            {!props.container && <th>Container</th>}
            <th>Kind</th>
            <th>Action</th>
            <th>Detail</th>
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 && (
            <tr>
              <td colSpan={5} class="muted">
                no events in the last hour
              </td>
            </tr>
          )}
          {rows.map((r) => (
            <tr key={r.n}>
              <td class="t" title={new Date(r.ev.time_ms).toISOString()}>
                {new Date(r.ev.time_ms).toLocaleTimeString()}
              </td>
              {!props.container && <td>{r.ev.container ?? ""}</td>}
              <td>{r.ev.kind}</td>
              <td>{r.ev.action}</td>
              <td>{describe(r.ev)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
