// Deploy history (`deploys_list`) and one deploy (`deploys_show`).

import { useEffect, useState } from "preact/hooks";
import type { Api } from "./api";
import { Link, agentHref } from "./link";
import { Outcome, Steps, outcomeClass, outcomeText } from "./outcome";
import type { DeployEntry } from "./types";

/** Deploys the history page asks for. */
const LIST_LIMIT = 100;
/** How often the history, and a running deploy's page, are read again. */
const REFRESH_MS = 3000;

export const deployHref = (id: string) => `/deploys/${encodeURIComponent(id)}`;

function useRefreshed<T>(load: () => Promise<T>, deps: unknown[], again: (v: T) => boolean) {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    let timer = 0;
    const tick = async () => {
      try {
        const v = await load();
        if (!live) return;
        setValue(v);
        setError("");
        if (again(v)) timer = window.setTimeout(tick, REFRESH_MS);
      } catch (e) {
        if (live) setError(e instanceof Error ? e.message : String(e));
      }
    };
    tick();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, deps);
  return { value, error };
}

export function Deploys(props: { api: Api; canDeploy: boolean }) {
  const { value, error } = useRefreshed(
    () => props.api.call<DeployEntry[]>("deploys_list", {}, { limit: LIST_LIMIT }),
    [props.api],
    () => true,
  );
  return (
    <section>
      <h2>Deploys</h2>
      {props.canDeploy && (
        <p>
          <Link href="/deploys/new">New deploy</Link>
        </p>
      )}
      {error && <p class="error">{error}</p>}
      {value === null ? (
        <p>Loading…</p>
      ) : (
        <table aria-label="Deploys">
          <thead>
            <tr>
              <th>Deploy</th>
              <th>When</th>
              <th>Who</th>
              <th>Server</th>
              <th>Container</th>
              <th>Image</th>
              <th>Kind</th>
              <th>Outcome</th>
            </tr>
          </thead>
          <tbody>
            {value.map((d) => {
              const o = d.outcome?.outcome ?? d.status;
              return (
                <tr key={d.id}>
                  <td>
                    <Link href={deployHref(d.id)}>{d.id.slice(0, 12)}</Link>
                  </td>
                  <td class="t">{new Date(d.created_at).toLocaleString()}</td>
                  <td>{d.actor}</td>
                  <td>
                    <Link href={agentHref(d.server)}>{d.server}</Link>
                  </td>
                  <td>{d.container ?? d.outcome?.containers?.map((c) => c.container).join(", ") ?? ""}</td>
                  <td>{d.image}</td>
                  <td>{d.outcome?.kind ?? "deploy"}</td>
                  <td class={outcomeClass(o)}>{outcomeText(o)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function Deploy(props: { api: Api; id: string }) {
  const { value: d, error } = useRefreshed(
    () => props.api.call<DeployEntry>("deploys_show", {}, { id: props.id }),
    [props.api, props.id],
    (v) => !v.outcome,
  );
  const steps = d?.outcome?.steps?.length ? d.outcome.steps : (d?.progress ?? []);
  return (
    <section>
      <p class="crumbs">
        <Link href="/deploys">Deploys</Link> / {props.id}
      </p>
      <h2>Deploy {props.id.slice(0, 12)}</h2>
      {error && <p class="error">{error}</p>}
      {d && (
        <>
          <p>
            {d.outcome?.kind ?? "deploy"} of <code>{d.image}</code> to{" "}
            <Link href={agentHref(d.server)}>{d.server}</Link>
            {d.container ? ` (${d.container})` : ""} by {d.actor}, started{" "}
            {new Date(d.created_at).toLocaleString()}
            {d.finished_at ? `, ended ${new Date(d.finished_at).toLocaleString()}` : " (running)"}
          </p>
          {d.outcome ? <Outcome outcome={d.outcome} /> : <p class="muted">running: {d.status}</p>}
          <h3>Steps</h3>
          <Steps steps={steps} />
        </>
      )}
    </section>
  );
}
