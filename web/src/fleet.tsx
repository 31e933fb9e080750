import { useEffect, useMemo, useState } from "preact/hooks";
import type { Api } from "./api";
import { Link, agentHref, ago, labelText } from "./link";
import { matches, parseSelector } from "./selector";
import type { AgentSummary, StatusRow } from "./types";
import { VirtualTable } from "./vlist";

/** The host in a `status` row: schema `HostSample` of
 *  docs/protocol.schema.json (`StatusRow.host`), declared here until types.ts
 *  is generated from the schema. */
interface HostSample {
  cpu_percent?: number | null;
  cpus: number;
  mem_used_bytes: number;
  mem_total_bytes: number;
  load1?: number;
  load5?: number;
  load15?: number;
  uptime_s?: number;
}

/** A `status` row with its `host` (absent from agents older than the field). */
type StatusWithHost = StatusRow & { host?: HostSample | null };

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
          // The fleet needs sums, not every container: `summary` keeps the
          // answer to a few dozen bytes an agent (10,000 agents' containers
          // in full are megabytes, read again every REFRESH_MS).
          api.call<StatusRow[]>("status", server ? { server } : {}, server ? {} : { summary: true }),
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

/** One agent's row, its sums computed once per refresh. */
interface Row {
  a: AgentSummary;
  labels: string;
  seen: number;
  running: number;
  total: number;
  cpu: number | null;
  mem: number;
  docker: string;
  dockerOk: boolean | null;
  /** The host's CPU share (0 to 100), memory in use and total; null without. */
  hostCpu: number | null;
  hostUsed: number | null;
  hostTotal: number;
}

type Key = "name" | "status" | "seen" | "containers" | "cpu" | "mem" | "hostCpu" | "hostMem";

/** Sort key (null: not sortable), title, width in % of the table (the
 *  stylesheet's widths were for the nine columns before the host's). */
const COLUMNS: [Key | null, string, number][] = [
  ["name", "Agent", 14],
  ["status", "State", 6],
  ["seen", "Last seen", 8],
  [null, "Labels", 14],
  [null, "Version", 6],
  [null, "Docker", 11],
  ["containers", "Containers", 8],
  ["cpu", "CPU", 7],
  ["mem", "Memory", 8],
  ["hostCpu", "Host CPU", 7],
  ["hostMem", "Host memory", 11],
];

const compare: Record<Key, (x: Row, y: Row) => number> = {
  name: (x, y) => (x.a.name < y.a.name ? -1 : x.a.name > y.a.name ? 1 : 0),
  status: (x, y) => Number(x.a.online) - Number(y.a.online),
  seen: (x, y) => x.seen - y.seen,
  containers: (x, y) => x.running - y.running || x.total - y.total,
  cpu: (x, y) => (x.cpu ?? -1) - (y.cpu ?? -1),
  mem: (x, y) => x.mem - y.mem,
  hostCpu: (x, y) => (x.hostCpu ?? -1) - (y.hostCpu ?? -1),
  hostMem: (x, y) => (x.hostUsed ?? -1) - (y.hostUsed ?? -1) || x.hostTotal - y.hostTotal,
};

const ROW_PX = 34;
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** Host memory as `3.1 / 7.8 GiB` (in use / total). */
function hostMem(used: number, total: number): string {
  return `${(used / GIB).toFixed(1)} / ${(total / GIB).toFixed(1)} GiB`;
}

function rows(agents: AgentSummary[], status: StatusWithHost[]): Row[] {
  const byName = new Map(status.map((s) => [s.server, s]));
  return agents.map((a) => {
    const s = byName.get(a.name);
    const c = s?.containers ?? [];
    let cpu: number | null = s?.totals?.cpu_percent ?? null;
    let mem = s?.totals?.mem_usage ?? 0;
    let running = s?.totals?.running ?? 0;
    for (const x of c) {
      if (x.state === "running") running++;
      if (x.cpu_percent != null) cpu = (cpu ?? 0) + x.cpu_percent;
      mem += x.mem_usage ?? 0;
    }
    const dockerOk = s?.docker_available ?? null;
    const docker =
      dockerOk === null ? "" : dockerOk ? "available" : s?.docker_error || "unavailable";
    const seen = a.online ? Number.MAX_SAFE_INTEGER : Date.parse(a.last_seen ?? "") || 0;
    const h = s?.host;
    return {
      a,
      labels: labelText(a.labels),
      seen,
      running,
      total: s?.totals?.total ?? c.length,
      cpu,
      mem,
      docker,
      dockerOk,
      hostCpu: h?.cpu_percent ?? null,
      hostUsed: h ? h.mem_used_bytes : null,
      hostTotal: h?.mem_total_bytes ?? 0,
    };
  });
}

export function Fleet(props: { api: Api }) {
  const { agents, status, error } = useStatus(props.api);
  const [filter, setFilter] = useState("");
  const [selText, setSelText] = useState("");
  const [sort, setSort] = useState<{ key: Key; desc: boolean }>({ key: "name", desc: false });
  const all = useMemo(() => rows(agents ?? [], status), [agents, status]);
  let selError = "";
  let sel = null;
  if (selText.trim()) {
    try {
      sel = parseSelector(selText);
    } catch (e) {
      selError = e instanceof Error ? e.message : String(e);
    }
  }
  const f = filter.trim().toLowerCase();
  const shown = useMemo(() => {
    const out = all.filter(
      (r) =>
        (!f || r.a.name.toLowerCase().includes(f) || r.labels.toLowerCase().includes(f)) &&
        (!sel || matches(sel, r.a.labels)),
    );
    const cmp = compare[sort.key];
    out.sort((x, y) => (sort.desc ? -1 : 1) * (cmp(x, y) || compare.name(x, y)));
    return out;
  }, [all, f, selText, sort]);
  const online = all.filter((r) => r.a.online).length;
  const running = all.reduce((n, r) => n + r.running, 0);
  const containers = all.reduce((n, r) => n + r.total, 0);
  return (
    <section>
      <h2>Fleet</h2>
      {error && <p class="error">{error}</p>}
      {agents !== null && (
        <p class="counts" data-testid="fleet-counts">
          Agents: {online} online, {all.length - online} offline, {all.length} total · Containers:{" "}
          {running} running / {containers} total
        </p>
      )}
      <div class="toolbar">
        <input
          class="filter"
          aria-label="Filter agents"
          placeholder="Filter by name or label"
          value={filter}
          onInput={(e) => setFilter(e.currentTarget.value)}
        />
        <input
          class="filter"
          aria-label="Label selector"
          placeholder="Label selector: env=prod,role"
          value={selText}
          onInput={(e) => setSelText(e.currentTarget.value)}
        />
      </div>
      {selError && (
        <p class="error" role="alert">
          Invalid selector: {selError}
        </p>
      )}
      {agents === null ? (
        <p>Loading…</p>
      ) : (
        <>
          <p class="muted">
            {shown.length} of {all.length} agents shown
          </p>
          <VirtualTable
            items={shown}
            rowHeight={ROW_PX}
            cols={COLUMNS.length}
            head={
              <tr>
                {COLUMNS.map(([key, title, width]) =>
                  key ? (
                    <th
                      key={title}
                      style={{ width: `${width}%` }}
                      aria-sort={sort.key === key ? (sort.desc ? "descending" : "ascending") : "none"}
                    >
                      <button
                        type="button"
                        class="sort"
                        onClick={() => setSort({ key, desc: sort.key === key ? !sort.desc : false })}
                      >
                        {title}
                        {sort.key === key ? (sort.desc ? " ▼" : " ▲") : ""}
                      </button>
                    </th>
                  ) : (
                    <th key={title} style={{ width: `${width}%` }}>
                      {title}
                    </th>
                  ),
                )}
              </tr>
            }
            row={(r) => (
              <tr key={r.a.name}>
                <td>
                  <Link href={agentHref(r.a.name)}>{r.a.name}</Link>
                </td>
                <td class={r.a.online ? "ok" : "bad"}>{r.a.online ? "online" : "offline"}</td>
                <td>{r.a.online ? "now" : ago(r.a.last_seen)}</td>
                <td class="clip" title={r.labels}>
                  {r.labels}
                </td>
                <td>{r.a.version ?? ""}</td>
                <td class={r.dockerOk === false ? "bad clip" : "clip"} title={r.docker}>
                  {r.docker}
                </td>
                <td>
                  {r.running}/{r.total}
                </td>
                <td>{r.cpu === null ? "" : `${r.cpu.toFixed(1)} %`}</td>
                <td>{r.total ? `${(r.mem / MIB).toFixed(r.mem < 100 * MIB ? 1 : 0)} MiB` : ""}</td>
                <td data-testid="host-cpu">{r.hostCpu === null ? "" : `${Math.round(r.hostCpu)} %`}</td>
                <td data-testid="host-mem">{r.hostUsed === null ? "" : hostMem(r.hostUsed, r.hostTotal)}</td>
              </tr>
            )}
          />
        </>
      )}
    </section>
  );
}
