// The admin page (admin role only; the hub refuses these actions to others
// with `forbidden` whatever the page shows): API tokens, join tokens,
// agents (revoke, rotate key, each confirmed) and the audit log.

import { useState } from "preact/hooks";
import type { Api } from "./api";
import { ApiTokens, JoinTokens, errText, useList } from "./admin";
import { Link, agentHref, labelText } from "./link";
import type { AgentSummary, AuditRow } from "./types";

/** Audit entries read per page ("Older" reads the next). */
const AUDIT_PAGE = 50;
/** Audit entries kept in the page across "Older" clicks. */
const AUDIT_MAX = 1000;

function AdminAgents(props: { api: Api }) {
  const { list, error, setError, reload } = useList<AgentSummary>(props.api, "list_agents");
  const [confirm, setConfirm] = useState<{ name: string; what: "revoke" | "rotate" } | null>(null);
  const [done, setDone] = useState("");
  const act = async () => {
    if (!confirm) return;
    const { name, what } = confirm;
    setConfirm(null);
    try {
      if (what === "revoke") {
        await props.api.call("revoke_agent", {}, { name });
        setDone(`${name} revoked`);
      } else {
        const r = await props.api.call<{ new_fingerprint: string }>("rotate_key", { server: name });
        setDone(`${name}: new key ${r.new_fingerprint}`);
      }
      reload();
    } catch (e) {
      setError(errText(e));
    }
  };
  return (
    <section aria-label="Agents">
      <h3>Agents</h3>
      {confirm && (
        <p class="confirm" role="alertdialog" aria-label="Confirm">
          {confirm.what === "revoke"
            ? `Revoke ${confirm.name}? Its key is refused from now on and its connection cut; it must enrol again.`
            : `Rotate the key of ${confirm.name}? The agent makes a new key and the old one is refused from then on.`}{" "}
          <button type="button" onClick={act}>
            Confirm
          </button>{" "}
          <button type="button" onClick={() => setConfirm(null)}>
            Cancel
          </button>
        </p>
      )}
      {done && <p class="ok">{done}</p>}
      {error && <p class="error">{error}</p>}
      <table>
        <thead>
          <tr>
            <th>Agent</th>
            <th>State</th>
            <th>Labels</th>
            <th>Key</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(list ?? []).map((a) => (
            <tr key={a.name}>
              <td>
                <Link href={agentHref(a.name)}>{a.name}</Link>
              </td>
              <td class={a.online ? "ok" : "bad"}>{a.online ? "online" : "offline"}</td>
              <td>{labelText(a.labels)}</td>
              <td class="muted">{(a as { fingerprint?: string }).fingerprint ?? ""}</td>
              <td>
                <button type="button" disabled={!a.online} onClick={() => setConfirm({ name: a.name, what: "rotate" })}>
                  Rotate key
                </button>{" "}
                <button type="button" onClick={() => setConfirm({ name: a.name, what: "revoke" })}>
                  Revoke
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Audit(props: { api: Api }) {
  const first = useList<AuditRow>(props.api, "audit_list", { limit: AUDIT_PAGE });
  const [older, setOlder] = useState<AuditRow[]>([]);
  const [end, setEnd] = useState(false);
  const rows = [...(first.list ?? []), ...older];
  const more = async () => {
    const last = rows[rows.length - 1];
    try {
      const page = await props.api.call<AuditRow[]>("audit_list", {}, { limit: AUDIT_PAGE, before: last.id });
      setOlder((o) => [...o, ...page].slice(0, AUDIT_MAX));
      setEnd(page.length < AUDIT_PAGE);
    } catch (e) {
      first.setError(errText(e));
    }
  };
  return (
    <section aria-label="Audit log">
      <h3>Audit log</h3>
      <p>
        <button
          type="button"
          onClick={() => {
            setOlder([]);
            setEnd(false);
            first.reload();
          }}
        >
          Refresh
        </button>
      </p>
      {first.error && <p class="error">{first.error}</p>}
      <table>
        <thead>
          <tr>
            <th>Time</th>
            <th>Actor</th>
            <th>Token</th>
            <th>Action</th>
            <th>Target</th>
            <th>Detail</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.id}>
              <td class="t">{new Date(r.time).toLocaleString()}</td>
              <td>{r.actor}</td>
              <td>{r.actor_token ?? ""}</td>
              <td>{r.action}</td>
              <td>{r.target}</td>
              <td>{r.detail}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length > 0 && !end && rows.length < AUDIT_MAX && (first.list?.length ?? 0) >= AUDIT_PAGE && (
        <button type="button" onClick={more}>
          Older
        </button>
      )}
    </section>
  );
}

export function Admin(props: { api: Api }) {
  return (
    <section>
      <h2>Admin</h2>
      <ApiTokens api={props.api} />
      <JoinTokens api={props.api} />
      <AdminAgents api={props.api} />
      <Audit api={props.api} />
    </section>
  );
}
