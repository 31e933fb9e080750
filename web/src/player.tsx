// A recorded exec session played back (admins; exec_sessions.tsx lists
// them): `exec_sessions_recording` streams the asciicast v2 text the hub
// kept (hub/src/api/exec/record.rs), parsed here and replayed into
// xterm.js with its own timing. Play/Pause, "Show all" (every remaining
// event at once) and "Restart".

import type { Terminal as XTerm } from "@xterm/xterm";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "./api";
import { openTerminal } from "./xterm";
import type { ErrorBody, LogChunk } from "./types";

/** One event the player applies: output, or the terminal's new size. */
export type CastEvent = { t: number; kind: "o"; text: string } | { t: number; kind: "r"; cols: number; rows: number };

export interface Cast {
  cols: number;
  rows: number;
  events: CastEvent[];
  /** Lines that were not asciicast v2 (a cut recording's last line). */
  skipped: number;
}

/** asciicast v2: a header object on the first line, then one event a line,
 *  `[seconds, code, data]`. Output ("o") and resizes ("r", `COLSxROWS`) are
 *  kept; input ("i") and markers are not played. */
export function parseCast(text: string): Cast | string {
  const lines = text.split("\n").filter((l) => l.trim());
  let header: { version?: number; width?: number; height?: number };
  try {
    header = JSON.parse(lines[0] ?? "");
  } catch {
    return "the recording does not start with an asciicast header";
  }
  if (header.version !== 2) return `asciicast version ${header.version ?? "?"}, not 2`;
  const cast: Cast = { cols: header.width || 80, rows: header.height || 24, events: [], skipped: 0 };
  for (const line of lines.slice(1)) {
    let e: unknown;
    try {
      e = JSON.parse(line);
    } catch {
      cast.skipped++;
      continue;
    }
    if (!Array.isArray(e) || typeof e[0] !== "number" || typeof e[2] !== "string") {
      cast.skipped++;
    } else if (e[1] === "o") cast.events.push({ t: e[0], kind: "o", text: e[2] });
    else if (e[1] === "r") {
      const m = /^(\d+)x(\d+)$/.exec(e[2]);
      if (m) cast.events.push({ t: e[0], kind: "r", cols: Number(m[1]), rows: Number(m[2]) });
    }
  }
  return cast;
}

/** The recording's text, read to its `end`. */
function useRecording(api: Api, id: string) {
  const [cast, setCast] = useState<Cast | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    let text = "";
    let cancel: (() => void) | null = null;
    setCast(null);
    setError("");
    api
      .send(
        "exec_sessions_recording",
        {},
        { id },
        (r) => {
          if (!live) return;
          if (r.type === "log") text += (r.data as LogChunk).text ?? "";
          else if (r.type === "end") {
            const c = parseCast(text);
            if (typeof c === "string") setError(c);
            else setCast(c);
          } else if (r.type === "error") setError((r.data as ErrorBody).message);
        },
        true,
      )
      .then((c) => (live ? (cancel = c) : c()))
      .catch((e) => live && setError(e instanceof Error ? e.message : String(e)));
    return () => {
      live = false;
      cancel?.();
    };
  }, [api, id]);
  return { cast, error };
}

function apply(term: XTerm, e: CastEvent) {
  if (e.kind === "o") term.write(e.text);
  else term.resize(e.cols, e.rows);
}

/** Replays `cast` into `term`: `at` events applied so far; `playing` runs
 *  a timer to the next event, measured from where the play started. */
function usePlayback(term: { current: XTerm | null }, cast: Cast | null) {
  const [at, setAt] = useState(0);
  const [playing, setPlaying] = useState(false);
  const next = useRef(0);
  // Recording time (seconds) reached, for a pause to resume from, and
  // when (page time) the recording's time 0 was, while it plays.
  const pos = useRef(0);
  const started = useRef(0);
  useEffect(() => {
    const t = term.current;
    if (!playing || !cast || !t) return;
    started.current = performance.now() - pos.current * 1000;
    let timer = 0;
    const step = () => {
      pos.current = (performance.now() - started.current) / 1000;
      const ev = cast.events;
      while (next.current < ev.length && ev[next.current].t <= pos.current) apply(t, ev[next.current++]);
      setAt(next.current);
      if (next.current >= ev.length) setPlaying(false);
      else timer = window.setTimeout(step, Math.max(0, (ev[next.current].t - pos.current) * 1000));
    };
    step();
    return () => clearTimeout(timer);
  }, [playing, cast]);
  const pause = () => {
    if (playing) pos.current = (performance.now() - started.current) / 1000;
    setPlaying(false);
  };
  const restart = () => {
    setPlaying(false);
    term.current?.reset();
    if (cast) term.current?.resize(cast.cols, cast.rows);
    next.current = 0;
    pos.current = 0;
    setAt(0);
  };
  const showAll = () => {
    const t = term.current;
    if (!t || !cast) return;
    setPlaying(false);
    while (next.current < cast.events.length) apply(t, cast.events[next.current++]);
    pos.current = cast.events.at(-1)?.t ?? 0;
    setAt(next.current);
  };
  return { at, playing, play: () => setPlaying(true), pause, restart, showAll };
}

export function Player(props: { api: Api; id: string }) {
  const { cast, error } = useRecording(props.api, props.id);
  const box = useRef<HTMLDivElement>(null);
  const term = useRef<XTerm | null>(null);
  const play = usePlayback(term, cast);
  useEffect(() => {
    const el = box.current;
    if (!el || !cast) return;
    const t = openTerminal(el, { cols: cast.cols, rows: cast.rows, input: false }).term;
    term.current = t;
    play.restart();
    play.play();
    return () => {
      play.pause();
      t.dispose();
      term.current = null;
    };
  }, [cast]);
  const n = cast?.events.length ?? 0;
  const total = cast?.events.at(-1)?.t ?? 0;
  const ended = cast !== null && play.at >= n;
  return (
    <section class="player" aria-label={`Recording of ${props.id}`}>
      <h3>Recording of {props.id}</h3>
      {error && <p class="error">{error}</p>}
      {!cast && !error && <p>Loading…</p>}
      {cast && (
        <div class="bar">
          <button type="button" disabled={ended} onClick={play.playing ? play.pause : play.play}>
            {play.playing ? "Pause" : "Play"}
          </button>
          <button type="button" disabled={ended} onClick={play.showAll}>
            Show all
          </button>
          <button type="button" onClick={play.restart}>
            Restart
          </button>
          <span class="muted" role="status">
            {ended ? "played" : play.playing ? "playing" : "paused"}: {play.at} of {n} events, {total.toFixed(1)} s
            {cast.skipped > 0 && ` · ${cast.skipped} lines that are not asciicast skipped`}
          </span>
        </div>
      )}
      <div class="xterm-box player" ref={box} />
    </section>
  );
}
