// The admin page's token sections: API tokens and join tokens, each secret
// shown once. The page itself is in admin_page.tsx.

import { useEffect, useState } from "preact/hooks";
import type { Api } from "./api";
import type { ApiTokenInfo, JoinTokenInfo } from "./types";

/** Lifetimes offered for new tokens, in seconds (`null`: never expires). */
const TOKEN_TTLS: [string, number | null][] = [
  ["1 day", 86400],
  ["30 days", 30 * 86400],
  ["90 days", 90 * 86400],
  ["never", null],
];
const JOIN_TTLS: [string, number][] = [
  ["1 hour", 3600],
  ["1 day", 86400],
  ["7 days", 7 * 86400],
];

export const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** A list read from the hub, read again after each change (`reload`). */
export function useList<T>(api: Api, action: string, payload: object = {}) {
  const [list, setList] = useState<T[] | null>(null);
  const [error, setError] = useState("");
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    api.call<T[]>(action, {}, payload).then(
      (v) => live && (setList(v), setError("")),
      (e) => live && setError(errText(e)),
    );
    return () => {
      live = false;
    };
  }, [api, action, n]);
  return { list, error, setError, reload: () => setN((x) => x + 1) };
}

/** A secret shown once, with a button that copies it. */
export function ShownOnce(props: { label: string; text: string }) {
  const [copied, setCopied] = useState("");
  return (
    <div class="once" role="status" aria-label={props.label}>
      <p>{props.label} (shown once, copy it now):</p>
      <code class="secret">{props.text}</code>{" "}
      <button
        type="button"
        onClick={() =>
          navigator.clipboard
            ?.writeText(props.text)
            .then(() => setCopied("copied"), (e) => setCopied(errText(e))) ??
          setCopied("no clipboard here: select the text")
        }
      >
        Copy
      </button>{" "}
      <span class="muted">{copied}</span>
    </div>
  );
}

function tokenState(t: ApiTokenInfo): string {
  if (t.revoked_at) return "revoked";
  if (t.expires_at && Date.parse(t.expires_at) <= Date.now()) return "expired";
  return "active";
}

export function ApiTokens(props: { api: Api }) {
  const { list, error, setError, reload } = useList<ApiTokenInfo>(props.api, "list_tokens");
  const [name, setName] = useState("");
  const [role, setRole] = useState("viewer");
  const [ttl, setTtl] = useState("2");
  const [shown, setShown] = useState("");
  const create = async () => {
    const t = TOKEN_TTLS[Number(ttl)][1];
    const payload = { role, name: name.trim() || undefined, ...(t === null ? { no_expiry: true } : { ttl_s: t }) };
    try {
      const made = await props.api.call<{ token: string }>("create_token", {}, payload);
      setShown(made.token);
      setName("");
      reload();
    } catch (e) {
      setError(errText(e));
    }
  };
  const revoke = (id: string) => props.api.call("revoke_token", {}, { id }).then(reload, (e) => setError(errText(e)));
  return (
    <section aria-label="API tokens">
      <h3>API tokens</h3>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          create();
        }}
      >
        <input aria-label="Token name" placeholder="name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <select aria-label="Role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
          <option value="viewer">viewer</option>
          <option value="operator">operator</option>
          <option value="admin">admin</option>
        </select>
        <select aria-label="Token lifetime" value={ttl} onChange={(e) => setTtl(e.currentTarget.value)}>
          {TOKEN_TTLS.map(([l], i) => (
            <option key={l} value={String(i)}>
              {l}
            </option>
          ))}
        </select>
        <button type="submit">Create token</button>
      </form>
      {shown && <ShownOnce label="New API token" text={shown} />}
      {error && <p class="error">{error}</p>}
      <table>
        <thead>
          <tr>
            <th>Id</th>
            <th>Name</th>
            <th>Role</th>
            <th>State</th>
            <th>Created</th>
            <th>Expires</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(list ?? []).map((t) => (
            <tr key={t.id}>
              <td>{t.id}</td>
              <td>{t.name}</td>
              <td>{t.role}</td>
              <td class={tokenState(t) === "active" ? "ok" : "bad"}>{tokenState(t)}</td>
              <td>{new Date(t.created_at).toLocaleString()}</td>
              <td>{t.expires_at ? new Date(t.expires_at).toLocaleString() : "never"}</td>
              <td>
                {tokenState(t) === "active" && (
                  <button type="button" aria-label={`Revoke token ${t.name}`} onClick={() => revoke(t.id)}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

interface JoinCreated {
  token: string;
  ssh_address?: string | null;
}

export function JoinTokens(props: { api: Api }) {
  const { list, error, setError, reload } = useList<JoinTokenInfo>(props.api, "list_join_tokens");
  const [name, setName] = useState("");
  const [labels, setLabels] = useState("");
  const [ttl, setTtl] = useState("0");
  const [command, setCommand] = useState("");
  const create = async () => {
    try {
      const payload = { name: name.trim(), labels: labels.trim() || undefined, ttl_s: JOIN_TTLS[Number(ttl)][1] };
      const made = await props.api.call<JoinCreated>("create_join_token", {}, payload);
      let ssh = made.ssh_address;
      if (!ssh) {
        // As the CLI does: the host this page reached the hub at, with its SSH port.
        const me = await props.api.call<{ ssh_port: number; ssh_public_address?: string }>("whoami");
        ssh = me.ssh_public_address ?? `${location.hostname}:${me.ssh_port}`;
      }
      setCommand(`nextdeploy-agent enroll --hub ${ssh} --token ${made.token}`);
      setName("");
      reload();
    } catch (e) {
      setError(errText(e));
    }
  };
  const remove = (id: string) => props.api.call("delete_join_token", {}, { id }).then(reload, (e) => setError(errText(e)));
  return (
    <section aria-label="Join tokens">
      <h3>Join tokens</h3>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          create();
        }}
      >
        <input aria-label="Agent name" placeholder="agent name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <input aria-label="Labels" placeholder="env=prod,role=web" value={labels} onInput={(e) => setLabels(e.currentTarget.value)} />
        <select aria-label="Join token lifetime" value={ttl} onChange={(e) => setTtl(e.currentTarget.value)}>
          {JOIN_TTLS.map(([l], i) => (
            <option key={l} value={String(i)}>
              {l}
            </option>
          ))}
        </select>
        <button type="submit" disabled={!name.trim()}>
          Create join token
        </button>
      </form>
      {command && <ShownOnce label="Enrol command (run it on the server, then nextdeploy-agent run)" text={command} />}
      {error && <p class="error">{error}</p>}
      <table>
        <thead>
          <tr>
            <th>Id</th>
            <th>Agent</th>
            <th>Labels</th>
            <th>State</th>
            <th>Expires</th>
            <th>Made by</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(list ?? []).map((j) => (
            <tr key={j.id}>
              <td>{j.id}</td>
              <td>{j.name}</td>
              <td>{Object.entries(j.labels).map(([k, v]) => (v ? `${k}=${v}` : k)).join(", ")}</td>
              <td>{j.used ? "used" : j.expired ? "expired" : "unused"}</td>
              <td>{new Date(j.expires_at).toLocaleString()}</td>
              <td>{j.created_by}</td>
              <td>
                <button type="button" aria-label={`Delete join token ${j.name}`} onClick={() => remove(j.id)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
