// The container page: a header from `status` (state, health, image,
// restarts), start/stop/restart/kill with a confirmation for operators and
// admins, and the tabs Logs, Inspect, Stats, Events (recent_events.tsx)
// and, for operators and admins, Deploy (container_deploy.tsx) and
// Terminal (terminal.tsx).

import { useEffect, useState } from "preact/hooks";
import type { Api } from "./api";
import { Confirm, type ContainerAction, ReadOnly, runAction, useRole } from "./actions";
import { Link, agentHref, ago } from "./link";
import { ContainerDeploy } from "./container_deploy";
import { Logs } from "./logs";
import { EventList } from "./recent_events";
import { Stats } from "./stats";
import { lazyComponent } from "./lazy";
import type { ContainerHealth, StatusRow } from "./types";

const TerminalTab = lazyComponent(() => import("./terminal").then((m) => m.TerminalTab));

/** How often the header re-reads `status` (agents push every few seconds). */
const REFRESH_MS = 3000;
const ACTIONS: ContainerAction[] = ["start", "stop", "restart", "kill"];
const TABS = ["Logs", "Inspect", "Stats", "Events", "Deploy", "Terminal"] as const;
/** Tabs that change the container: drawn for operators and admins only. */
const OPERATOR_TABS: readonly string[] = ["Deploy", "Terminal"];

function useContainer(api: Api, agent: string, name: string, tick: number) {
  const [row, setRow] = useState<ContainerHealth | undefined>(undefined);
  const [at, setAt] = useState<number | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    const load = () =>
      api.call<StatusRow[]>("status", { server: agent }).then(
        (s) => {
          if (!live) return;
          const r = s.find((x) => x.server === agent);
          setRow(r?.containers.find((c) => c.name === name));
          setAt(r?.snapshot_at ? Date.parse(r.snapshot_at) / 1000 : null);
          setError(r && !r.online ? "the agent is offline" : "");
        },
        (e) => live && setError(e instanceof Error ? e.message : String(e)),
      );
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [api, agent, name, tick]);
  return { row, at, error };
}

function Inspect(props: { api: Api; agent: string; container: string }) {
  const [doc, setDoc] = useState<string | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    props.api.call<unknown>("inspect", { server: props.agent }, { container: props.container }).then(
      (d) => live && setDoc(JSON.stringify(d, null, 2)),
      (e) => live && setError(e instanceof Error ? e.message : String(e)),
    );
    return () => {
      live = false;
    };
  }, [props.api, props.agent, props.container]);
  return (
    <section aria-label="Inspect">
      {error && <p class="error">{error}</p>}
      {doc === null && !error ? <p>Loading…</p> : <pre class="inspect">{doc}</pre>}
    </section>
  );
}

function Header(props: { row?: ContainerHealth }) {
  const c = props.row;
  if (!c) return <p class="muted">not in the agent's latest snapshot</p>;
  return (
    <dl class="facts" aria-label="Container state">
      <dt>State</dt>
      <dd class={c.state === "running" ? "ok" : "bad"} data-testid="state">
        {c.state}
      </dd>
      <dt>Health</dt>
      <dd>{c.health ?? "none"}</dd>
      <dt>Image</dt>
      <dd>{c.image}</dd>
      <dt>Restarts</dt>
      <dd>{c.restarts}</dd>
      <dt>Started</dt>
      <dd data-testid="started" title={c.started_at ?? ""}>
        {c.started_at ? ago(c.started_at) : "-"}
      </dd>
    </dl>
  );
}

export function Container(props: { api: Api; agent: string; name: string }) {
  const [tab, setTab] = useState<(typeof TABS)[number]>("Logs");
  const [asking, setAsking] = useState<ContainerAction | null>(null);
  const [result, setResult] = useState<{ ok: boolean; message: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [tick, setTick] = useState(0);
  const { role, canOperate } = useRole();
  const { row, at, error } = useContainer(props.api, props.agent, props.name, tick);
  const act = async (action: ContainerAction) => {
    setBusy(true);
    setResult(null);
    setResult(await runAction(props.api, props.agent, action, props.name));
    setBusy(false);
    setTick((t) => t + 1);
  };
  return (
    <section>
      <p class="crumbs">
        <Link href="/">Fleet</Link> / <Link href={agentHref(props.agent)}>{props.agent}</Link> / {props.name}
      </p>
      <h2>{props.name}</h2>
      {error && <p class="error">{error}</p>}
      <Header row={row} />
      {!canOperate && <ReadOnly role={role} />}
      {canOperate && (
        <div class="bar" role="group" aria-label="Actions">
          {ACTIONS.map((a) => (
            <button key={a} type="button" disabled={busy} onClick={() => setAsking(a)}>
              {a[0].toUpperCase() + a.slice(1)}
            </button>
          ))}
        </div>
      )}
      {result && (
        <p class={result.ok ? "ok" : "error"} role="alert">
          {result.message}
        </p>
      )}
      {asking && (
        <Confirm
          question={`${asking} ${props.name} on ${props.agent}?`}
          confirm={asking[0].toUpperCase() + asking.slice(1)}
          onAnswer={(yes) => {
            const a = asking;
            setAsking(null);
            if (yes) act(a);
          }}
        />
      )}
      <div class="tabs" role="tablist">
        {TABS.filter((t) => canOperate || !OPERATOR_TABS.includes(t)).map((t) => (
          <button key={t} type="button" role="tab" aria-selected={t === tab} onClick={() => setTab(t)}>
            {t}
          </button>
        ))}
      </div>
      {tab === "Logs" && <Logs key={tick} api={props.api} agent={props.agent} container={props.name} />}
      {tab === "Inspect" && <Inspect api={props.api} agent={props.agent} container={props.name} />}
      {tab === "Stats" && <Stats api={props.api} agent={props.agent} container={props.name} live={row} liveAt={at} />}
      {tab === "Events" && <EventList api={props.api} server={props.agent} container={props.name} />}
      {tab === "Deploy" && canOperate && (
        <ContainerDeploy api={props.api} agent={props.agent} container={props.name} image={row?.image} />
      )}
      {tab === "Terminal" && canOperate && (
        <TerminalTab api={props.api} agent={props.agent} container={props.name} isAdmin={role === "admin"} />
      )}
    </section>
  );
}
