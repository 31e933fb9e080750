// The exec sessions page (`/exec-sessions`, admins; the hub refuses
// `exec_sessions_list` to others): who ran what where and when, how it
// ended, the bytes each way, and for a session with a TTY recording a
// player (player.tsx). `?id=SESSION` opens that session's player (the
// terminal's "exited" line links here).

import { useState } from "preact/hooks";
import type { Api } from "./api";
import { useList } from "./admin";
import { Link, agentHref, containerHref } from "./link";
import { lazyComponent } from "./lazy";
import type { ExecSession } from "./types";

const Player = lazyComponent(() => import("./player").then((m) => m.Player));

/** Sessions listed (newest first); the hub allows up to 1000. */
const SESSIONS_SHOWN = 200;

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function ended(s: ExecSession): string {
  if (s.exit_code != null) return `exit ${s.exit_code}`;
  if (s.error) return s.error;
  return s.ended ? "ended" : "running";
}

function Row(props: { s: ExecSession; onPlay: () => void; selected: boolean }) {
  const s = props.s;
  return (
    <tr aria-selected={props.selected} data-session={s.id}>
      <td class="t" title={s.started}>
        {new Date(s.started).toLocaleString()}
      </td>
      <td>{s.actor}</td>
      <td>
        <Link href={agentHref(s.server)}>{s.server}</Link> /{" "}
        <Link href={containerHref(s.server, s.container)}>{s.container}</Link>
      </td>
      <td>
        <code>{s.command}</code>
        {s.tty ? "" : <span class="muted"> (no TTY)</span>}
      </td>
      <td class={s.exit_code === 0 ? "ok" : s.exit_code == null && !s.ended ? "" : "bad"}>{ended(s)}</td>
      <td>
        {bytes(s.bytes_in)} / {bytes(s.bytes_out)}
      </td>
      <td>
        {s.recording_bytes > 0 ? (
          <button type="button" onClick={props.onPlay}>
            Play ({bytes(s.recording_bytes)}
            {s.truncated ? ", cut" : ""})
          </button>
        ) : (
          <span class="muted">none</span>
        )}
      </td>
    </tr>
  );
}

export function ExecSessions(props: { api: Api }) {
  const { list, error, reload } = useList<ExecSession>(props.api, "exec_sessions_list", { limit: SESSIONS_SHOWN });
  const [selected, setSelected] = useState<string | null>(() => new URLSearchParams(location.search).get("id"));
  const play = (id: string) => {
    setSelected(id);
    history.replaceState(null, "", `?id=${encodeURIComponent(id)}`);
  };
  return (
    <section>
      <h2>Exec sessions</h2>
      <p class="muted">
        Every <code>exec</code> through the hub, newest first. Sessions with a TTY are recorded (what they printed, not
        what was typed, unless the hub records input).{" "}
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </p>
      {error && <p class="error">{error}</p>}
      {selected && <Player key={selected} api={props.api} id={selected} />}
      <table aria-label="Exec sessions">
        <thead>
          <tr>
            <th>Started</th>
            <th>Who</th>
            <th>Where</th>
            <th>Command</th>
            <th>End</th>
            <th>In / out</th>
            <th>Recording</th>
          </tr>
        </thead>
        <tbody>
          {(list ?? []).map((s) => (
            <Row key={s.id} s={s} selected={s.id === selected} onPlay={() => play(s.id)} />
          ))}
        </tbody>
      </table>
      {list?.length === 0 && <p class="muted">No exec sessions yet.</p>}
    </section>
  );
}
