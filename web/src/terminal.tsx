// The container page's "Terminal" tab (operators and admins): `exec` with a
// TTY through the hub, drawn by xterm.js (xterm.ts). Keystrokes go as
// `exec_input`, a new size (the box fitted to the page) as `exec_resize`,
// the command's output is written as it arrives; its exit code is shown
// when it ends. Disconnect cancels the exec (the agent then closes it).

import type { Terminal as XTerm } from "@xterm/xterm";
import type { FitAddon } from "@xterm/addon-fit";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "./api";
import { Link } from "./link";
import { chunkBytes, openTerminal } from "./xterm";
import type { ErrorBody, LogChunk, Reply } from "./types";

/** The command line split as a shell would split words: spaces separate,
 *  single and double quotes group, a backslash escapes the next character.
 *  Null when a quote is left open. */
export function splitCommand(line: string): string[] | null {
  const words: string[] = [];
  let word: string | null = null;
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = "";
      else if (c === "\\" && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (c === "\\" && i + 1 < line.length) word = (word ?? "") + line[++i];
    else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else word = (word ?? "") + c;
  }
  if (quote) return null;
  if (word !== null) words.push(word);
  return words;
}

type State =
  | { kind: "idle" }
  | { kind: "connecting" }
  | { kind: "connected" }
  | { kind: "ended"; exit: number; session?: string | null }
  | { kind: "closed"; message: string };

function StateLine(props: { state: State; isAdmin: boolean }) {
  const s = props.state;
  if (s.kind === "idle") return <span class="muted">not connected</span>;
  if (s.kind === "connecting") return <span class="muted">connecting…</span>;
  if (s.kind === "connected") return <span class="ok">connected: type in the terminal</span>;
  if (s.kind === "closed") return <span class={s.message === "disconnected" ? "muted" : "error"}>{s.message}</span>;
  return (
    <span class={s.exit === 0 ? "ok" : "bad"} data-testid="exit">
      exited with code {s.exit}
      {s.session && props.isAdmin && (
        <>
          {" "}
          (<Link href={`/exec-sessions?id=${encodeURIComponent(s.session)}`}>session {s.session}</Link>)
        </>
      )}
    </span>
  );
}

/** xterm.js in `box`, fitted to it whenever the page resizes it. */
function useXterm(box: { current: HTMLDivElement | null }) {
  const term = useRef<{ term: XTerm; fit: FitAddon } | null>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const t = openTerminal(el, { input: true });
    term.current = t;
    t.fit.fit();
    const seen = new ResizeObserver(() => t.fit.fit());
    seen.observe(el);
    return () => {
      seen.disconnect();
      t.term.dispose();
      term.current = null;
    };
  }, []);
  return term;
}

/** The exec behind the terminal: started by `connect`, fed keystrokes and
 *  sizes while it runs, cancelled by `disconnect` or when the tab closes. */
function useExec(api: Api, agent: string, container: string, xt: ReturnType<typeof useXterm>) {
  const [state, setState] = useState<State>({ kind: "idle" });
  // The running exec: its request id (what exec_input names) and its cancel.
  const exec = useRef<{ id: number; cancel: () => void } | null>(null);

  useEffect(() => {
    const t = xt.current;
    if (!t) return;
    const input = t.term.onData((data) => exec.current && api.post("exec_input", { exec: exec.current.id, data }));
    // Bytes that are not UTF-8 (old mouse reports), as base64.
    const binary = t.term.onBinary((data) => exec.current && api.post("exec_input", { exec: exec.current.id, b64: btoa(data) }));
    const resize = t.term.onResize(({ cols, rows }) => exec.current && api.post("exec_resize", { exec: exec.current.id, cols, rows }));
    return () => {
      input.dispose();
      binary.dispose();
      resize.dispose();
      exec.current?.cancel();
      exec.current = null;
    };
  }, [api]);

  const done = (s: State) => {
    exec.current = null;
    setState(s);
  };
  const onReply = (t: XTerm) => (r: Reply) => {
    if (r.type === "log") {
      t.write(chunkBytes(r.data as LogChunk));
      setState((s) => (s.kind === "connecting" ? { kind: "connected" } : s));
    } else if (r.type === "result") {
      const e = r.data as { exit_code: number; session?: string | null };
      done({ kind: "ended", exit: e.exit_code, session: e.session });
    } else if (r.type === "error") done({ kind: "closed", message: `error: ${(r.data as ErrorBody).message}` });
  };
  const connect = async (cmd: string, user: string) => {
    const t = xt.current;
    const words = splitCommand(cmd);
    if (!t) return;
    if (!words || words.length === 0) {
      setState({ kind: "closed", message: words ? "the command is empty" : "the command has an unclosed quote" });
      return;
    }
    t.term.reset();
    t.fit.fit();
    setState({ kind: "connecting" });
    const payload = {
      container,
      cmd: words,
      interactive: true,
      tty: true,
      cols: t.term.cols,
      rows: t.term.rows,
      ...(user.trim() ? { user: user.trim() } : {}),
    };
    try {
      exec.current = await api.open("exec", { server: agent }, payload, onReply(t.term), true);
      setState((s) => (s.kind === "connecting" ? { kind: "connected" } : s));
      t.term.focus();
    } catch (e) {
      done({ kind: "closed", message: `error: ${e instanceof Error ? e.message : String(e)}` });
    }
  };
  const disconnect = () => {
    exec.current?.cancel();
    done({ kind: "closed", message: "disconnected" });
  };
  return { state, connect, disconnect };
}

export function TerminalTab(props: { api: Api; agent: string; container: string; isAdmin: boolean }) {
  const [cmd, setCmd] = useState("sh");
  const [user, setUser] = useState("");
  const box = useRef<HTMLDivElement>(null);
  const xt = useXterm(box);
  const { state, connect, disconnect } = useExec(props.api, props.agent, props.container, xt);
  const running = state.kind === "connecting" || state.kind === "connected";

  return (
    <section class="terminal" aria-label="Terminal">
      <form
        class="bar"
        onSubmit={(e) => {
          e.preventDefault();
          if (!running) connect(cmd, user);
        }}
      >
        <label>
          Command{" "}
          <input aria-label="Command" size={24} value={cmd} disabled={running} onInput={(e) => setCmd(e.currentTarget.value)} />
        </label>
        <label>
          User{" "}
          <input
            aria-label="User"
            size={10}
            placeholder="image's user"
            value={user}
            disabled={running}
            onInput={(e) => setUser(e.currentTarget.value)}
          />
        </label>
        {/* Keyed apart: were the one element reused, Disconnect's click
            would end on a submit button and connect again. */}
        {running ? (
          <button key="disconnect" type="button" onClick={disconnect}>
            Disconnect
          </button>
        ) : (
          <button key="connect" type="submit">
            Connect
          </button>
        )}
        <span role="status">
          <StateLine state={state} isAdmin={props.isAdmin} />
        </span>
      </form>
      <div class="xterm-box" ref={box} />
      <p class="muted">
        Runs the command in the container as <code>docker exec -it</code> does; the hub records what it prints
        (admins replay it under Exec sessions).
      </p>
    </section>
  );
}
