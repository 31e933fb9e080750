// The agent page: host facts and the agent's own policy from `info`, its
// containers from `status` with
// a sparkline of their last hour (agent_table.tsx), for operators and
// admins start/stop/restart of several at once, and the agent's events
// (recent_events.tsx).

import { useEffect, useState } from "preact/hooks";
import type { Api } from "./api";
import { Confirm, type ContainerAction, ReadOnly, runAction, useRole } from "./actions";
import { useStatus } from "./fleet";
import { ContainerTable } from "./agent_table";
import { Link } from "./link";
import { EventList } from "./recent_events";
import type { AgentPolicy, HostInfo } from "./types";

const BULK: ContainerAction[] = ["start", "stop", "restart"];
const GIB = 1073741824;

function duration(s: number): string {
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

/** What the agent's own policy refuses, whatever the hub asks. */
function policyText(p: AgentPolicy | null | undefined): string {
  if (!p) return "not reported (agent too old)";
  const parts: string[] = [];
  if (p.read_only) parts.push("read-only");
  if (p.lifecycle === false) parts.push("no start/stop/restart/kill/rm");
  if (p.exec === false) parts.push("no exec");
  if (p.exec_allow_root === false) parts.push("no exec as root");
  if (p.deploy_images && p.deploy_images.length > 0) parts.push(`images: ${p.deploy_images.join(", ")}`);
  return parts.length > 0 ? parts.join(" · ") : "everything allowed";
}

function Host(props: { api: Api; name: string }) {
  const [info, setInfo] = useState<HostInfo | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    props.api.call<HostInfo>("info", { server: props.name }).then(
      (i) => live && setInfo(i),
      (e) => live && setError(e instanceof Error ? e.message : String(e)),
    );
    return () => {
      live = false;
    };
  }, [props.api, props.name]);
  if (error) return <p class="muted">Host info: {error}</p>;
  if (!info) return <p class="muted">Host info: loading…</p>;
  return (
    <dl class="facts" aria-label="Host">
      <dt>Host</dt>
      <dd>{info.hostname}</dd>
      <dt>OS</dt>
      <dd>
        {info.os} ({info.arch})
      </dd>
      <dt>Kernel</dt>
      <dd>{info.kernel}</dd>
      <dt>CPUs</dt>
      <dd>{info.cpus}</dd>
      <dt>Memory</dt>
      <dd>
        {(info.memory_available_bytes / GIB).toFixed(1)} of {(info.memory_total_bytes / GIB).toFixed(1)} GiB free
      </dd>
      <dt>Uptime</dt>
      <dd>{duration(info.host_uptime_s)}</dd>
      <dt>Agent</dt>
      <dd>
        {info.agent_version}, up {duration(info.agent_uptime_s)}
      </dd>
      <dt>Docker</dt>
      <dd>{info.docker.available ? info.docker.version ?? "available" : info.docker.error ?? "unavailable"}</dd>
      <dt>Policy</dt>
      <dd>{policyText(info.policy)}</dd>
    </dl>
  );
}

export function Agent(props: { api: Api; name: string }) {
  const { status, error } = useStatus(props.api, props.name);
  const { role, canOperate } = useRole();
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [asking, setAsking] = useState<ContainerAction | null>(null);
  const [results, setResults] = useState<{ ok: boolean; message: string }[]>([]);
  const [busy, setBusy] = useState(false);
  const row = status.find((s) => s.server === props.name);
  const containers = row?.containers ?? [];
  const toggle = (name: string, on: boolean) => {
    const next = new Set(picked);
    if (on) next.add(name);
    else next.delete(name);
    setPicked(next);
  };
  const names = containers.map((c) => c.name).filter((n) => picked.has(n));
  const act = async (action: ContainerAction) => {
    setBusy(true);
    setResults([]);
    setResults(await Promise.all(names.map((n) => runAction(props.api, props.name, action, n))));
    setBusy(false);
  };
  return (
    <section>
      <p class="crumbs">
        <Link href="/">Fleet</Link> / {props.name}
      </p>
      <h2>{props.name}</h2>
      {error && <p class="error">{error}</p>}
      {row && (
        <p>
          <span class={row.online ? "ok" : "bad"}>{row.online ? "online" : "offline"}</span>
          {row.docker_error ? ` · Docker: ${row.docker_error}` : ""}
        </p>
      )}
      <Host api={props.api} name={props.name} />
      {!canOperate && <ReadOnly role={role} />}
      {canOperate && (
        <div class="bar" role="group" aria-label="Selected containers">
          {BULK.map((a) => (
            <button key={a} type="button" disabled={busy || names.length === 0} onClick={() => setAsking(a)}>
              {a[0].toUpperCase() + a.slice(1)} selected
            </button>
          ))}
          <span class="muted">{names.length} selected</span>
        </div>
      )}
      {results.map((r) => (
        <p key={r.message} class={r.ok ? "ok" : "error"}>
          {r.message}
        </p>
      ))}
      {asking && (
        <Confirm
          question={`${asking} ${names.length} containers on ${props.name} (${names.join(", ")})?`}
          confirm={asking[0].toUpperCase() + asking.slice(1)}
          onAnswer={(yes) => {
            const a = asking;
            setAsking(null);
            if (yes) act(a);
          }}
        />
      )}
      <ContainerTable
        api={props.api}
        agent={props.name}
        containers={containers}
        picked={canOperate ? picked : null}
        onPick={toggle}
        onPickAll={(on) => setPicked(new Set(on ? containers.map((c) => c.name) : []))}
      />
      <h3>Events</h3>
      <EventList api={props.api} server={props.name} />
    </section>
  );
}
