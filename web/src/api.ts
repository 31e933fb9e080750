// The dashboard's one WebSocket to the hub: the same /ws API the CLI uses,
// authenticated by the session cookie (same origin, so the browser sends it).

import type { ErrorBody, Reply, Session } from "./types";

type Listener = (reply: Reply) => void;

/** How long a WebSocket may stay connecting before it is given up (a
 *  network change can leave one stalled); the next request opens another. */
const CONNECT_TIMEOUT_MS = 8000;

export class ApiError extends Error {
  constructor(
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

export class Api {
  private ws: WebSocket | null = null;
  private opening: Promise<WebSocket> | null = null;
  private nextId = 1;
  private listeners = new Map<number, Listener>();
  /** Set when the hub closed the socket for policy (1008: signed out, token
   *  revoked or expired): reconnecting would only be refused (and logged by
   *  the browser) until the page signs in again, with a new Api. */
  private ended = "";
  onClose: (reason: string) => void = () => {};

  private socket(): Promise<WebSocket> {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return Promise.resolve(this.ws);
    if (this.opening) return this.opening;
    if (this.ended) return Promise.reject(new ApiError("closed", this.ended));
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.opening = new Promise((resolve, reject) => {
      const fail = () => {
        window.clearTimeout(stalled);
        if (this.opening === opening) this.opening = null;
        reject(new ApiError("connect", "could not connect to the hub"));
      };
      const stalled = window.setTimeout(() => {
        ws.onclose = null;
        ws.close();
        fail();
      }, CONNECT_TIMEOUT_MS);
      ws.onopen = () => {
        window.clearTimeout(stalled);
        this.ws = ws;
        this.opening = null;
        resolve(ws);
      };
      ws.onerror = fail;
    });
    const opening = this.opening;
    ws.onmessage = (ev) => {
      const reply = JSON.parse(String(ev.data)) as Reply;
      if (reply.id != null) this.listeners.get(reply.id)?.(reply);
    };
    ws.onclose = (ev) => {
      this.ws = null;
      if (ev.code === 1008) this.ended = ev.reason || "session ended";
      // `closed` is the page's own code (not the hub's ErrorCode).
      const gone = { code: "closed", message: ev.reason || "connection closed" };
      for (const [id, l] of this.listeners) l({ id, type: "error", data: gone });
      this.listeners.clear();
      this.onClose(ev.reason);
    };
    return this.opening;
  }

  /** One request: every reply goes to `onReply` until an `end`, `error` or
   *  (unless `stream`) `result`. Returns a function that cancels it. */
  async send(
    action: string,
    target: { server?: string; selector?: string },
    payload: object,
    onReply: Listener,
    stream = false,
  ): Promise<() => void> {
    return (await this.open(action, target, payload, onReply, stream)).cancel;
  }

  /** `send`, also giving the request's id (what `exec_input` names). */
  async open(
    action: string,
    target: { server?: string; selector?: string },
    payload: object,
    onReply: Listener,
    stream = false,
  ): Promise<{ id: number; cancel: () => void }> {
    const ws = await this.socket();
    const id = this.nextId++;
    this.listeners.set(id, (r) => {
      const last = r.type === "end" || r.type === "error" || (!stream && r.type === "result");
      if (last) this.listeners.delete(id);
      onReply(r);
    });
    ws.send(JSON.stringify({ id, action, ...target, payload }));
    const cancel = () => {
      if (!this.listeners.has(id)) return;
      this.listeners.delete(id);
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ id: this.nextId++, action: "cancel", payload: { id } }));
      }
    };
    return { id, cancel };
  }

  /** A message the hub answers only when it refuses it (`exec_input`,
   *  `exec_resize`): sent on the open socket (where its exec runs), with no
   *  listener kept per keystroke; a refusal is dropped, since the exec's own
   *  `error` or `result` already says when it is gone. */
  post(action: string, payload: object) {
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ id: this.nextId++, action, payload }));
    }
  }

  /** A one-shot request's `result` data. */
  call<T>(action: string, target: { server?: string } = {}, payload: object = {}): Promise<T> {
    return new Promise((resolve, reject) => {
      this.send(action, target, payload, (r) => {
        if (r.type === "result") resolve(r.data as T);
        else if (r.type === "error") {
          const e = r.data as ErrorBody;
          reject(new ApiError(e.code, e.message));
        }
      }).catch(reject);
    });
  }

  close() {
    this.ws?.close();
    this.ws = null;
  }
}

const JSON_HEADERS = { "Content-Type": "application/json" };

export async function currentSession(): Promise<Session | null> {
  const r = await fetch("/api/session", { credentials: "same-origin" });
  return r.ok ? ((await r.json()) as Session) : null;
}

export async function signIn(token: string): Promise<void> {
  const r = await fetch("/api/session", {
    method: "POST",
    headers: JSON_HEADERS,
    credentials: "same-origin",
    body: JSON.stringify({ token }),
  });
  if (!r.ok) throw new ApiError(String(r.status), (await r.text()).trim() || "sign-in refused");
}

export async function signOut(): Promise<void> {
  await fetch("/api/session", { method: "DELETE", headers: JSON_HEADERS, credentials: "same-origin" });
}
