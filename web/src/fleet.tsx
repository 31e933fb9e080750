import { useEffect, useState } from "preact/hooks";
import type { Api } from "./api";
import { Link, agentHref, ago, labelText } from "./link";
import type { AgentSummary, StatusRow } from "./types";

/** How often the fleet and agent pages re-read `status` (the hub answers
 *  from its latest snapshots without asking agents; they push every 5 s). */
const REFRESH_MS = 5000;

export function useStatus(api: Api, server?: string) {
  const [agents, setAgents] = useState<AgentSummary[] | null>(null);
  const [status, setStatus] = useState<StatusRow[]>([]);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    const load = async () => {
      try {
        const [a, s] = await Promise.all([
          api.call<AgentSummary[]>("list_agents"),
          api.call<StatusRow[]>("status", server ? { server } : {}),
        ]);
        if (!live) return;
        setAgents(a);
        setStatus(s);
        setError("");
      } catch (e) {
        if (live) setError(e instanceof Error ? e.message : String(e));
      }
    };
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [api, server]);
  return { agents, status, error };
}

export function Fleet(props: { api: Api }) {
  const { agents, status, error } = useStatus(props.api);
  const [filter, setFilter] = useState("");
  const byName = new Map(status.map((s) => [s.server, s]));
  const f = filter.trim().toLowerCase();
  const shown = (agents ?? []).filter(
    (a) => !f || a.name.toLowerCase().includes(f) || labelText(a.labels).toLowerCase().includes(f),
  );
  return (
    <section>
      <h2>Fleet</h2>
      {error && <p class="error">{error}</p>}
      <input
        class="filter"
        aria-label="Filter agents"
        placeholder="Filter by name or label"
        value={filter}
        onInput={(e) => setFilter(e.currentTarget.value)}
      />
      {agents === null ? (
        <p>Loading…</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Agent</th>
              <th>State</th>
              <th>Last seen</th>
              <th>Labels</th>
              <th>Version</th>
              <th>Containers</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((a) => {
              const c = byName.get(a.name)?.containers ?? [];
              const running = c.filter((x) => x.state === "running").length;
              return (
                <tr key={a.name}>
                  <td>
                    <Link href={agentHref(a.name)}>{a.name}</Link>
                  </td>
                  <td class={a.online ? "ok" : "bad"}>{a.online ? "online" : "offline"}</td>
                  <td>{a.online ? "now" : ago(a.last_seen)}</td>
                  <td>{labelText(a.labels)}</td>
                  <td>{a.version ?? ""}</td>
                  <td>
                    {running}/{c.length}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
