// The alerts page (`/alerts`, every role): what fires now, what fired in
// the last 24 hours with each notification's delivery (channel, state,
// attempts, last answer), the silences (operators add and end them), and
// for admins the rules and channels (remove, test a channel). Adding rules
// and channels stays with the CLI's `nextdeploy alert ...` and `alert
// apply -f` (a file is what teams review); the page reads what the hub
// holds and refreshes itself.

import { useEffect, useState } from "preact/hooks";
import type { Api } from "./api";
import { errText, useList } from "./admin";
import { Link, agentHref, containerHref } from "./link";
import { Silences } from "./silences";
import type { AlertChannelInfo, AlertInfo, AlertRuleInfo } from "./types";

/** How often the firing list and the history are read again. */
const REFRESH_MS = 10_000;
/** Alerts of the history shown (the hub allows up to 1000). */
const HISTORY_SHOWN = 200;

function useRefreshed<T>(api: Api, action: string, payload: object = {}) {
  const l = useList<T>(api, action, payload);
  useEffect(() => {
    const t = setInterval(l.reload, REFRESH_MS);
    return () => clearInterval(t);
  }, [api, action]);
  return l;
}

function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "";
}

function Where(props: { a: AlertInfo }) {
  const { server, container } = props.a;
  return (
    <>
      <Link href={agentHref(server)}>{server}</Link>
      {container && (
        <>
          {" / "}
          <Link href={containerHref(server, container)}>{container}</Link>
        </>
      )}
    </>
  );
}

function Notifications(props: { a: AlertInfo }) {
  const n = props.a.notifications ?? [];
  if (n.length === 0) return <span class="muted">{props.a.notified ? "sent" : "none (quiet)"}</span>;
  return (
    <ul class="plain">
      {n.map((x) => (
        <li key={x.id} class={x.state === "delivered" ? "ok" : x.state === "failed" ? "bad" : ""}>
          {x.status} → {x.channel}: {x.state}
          {x.attempts > 1 ? ` after ${x.attempts} attempts` : ""}
          {x.last_status != null ? ` (HTTP ${x.last_status})` : ""}
          {x.last_error ? <span class="muted"> {x.last_error}</span> : null}
        </li>
      ))}
    </ul>
  );
}

function AlertTable(props: { label: string; list: AlertInfo[]; history?: boolean }) {
  return (
    <table aria-label={props.label}>
      <thead>
        <tr>
          <th>Severity</th>
          <th>Rule</th>
          <th>Where</th>
          <th>What</th>
          <th>Started</th>
          {props.history && <th>Resolved</th>}
          <th>Notifications</th>
        </tr>
      </thead>
      <tbody>
        {props.list.map((a) => (
          <tr key={a.id} data-alert={a.id} data-status={a.status}>
            <td class={a.severity === "critical" ? "bad" : ""}>{a.severity}</td>
            <td>{a.rule}</td>
            <td>
              <Where a={a} />
            </td>
            <td>{a.summary}</td>
            <td class="t">{when(a.started_at)}</td>
            {props.history && <td class="t">{a.status === "resolved" ? when(a.resolved_at) : "firing"}</td>}
            <td>
              <Notifications a={a} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Rules(props: { api: Api }) {
  const { list, error, setError, reload } = useList<AlertRuleInfo>(props.api, "alert_rule_list");
  const remove = (name: string) =>
    props.api.call("alert_rule_remove", {}, { name }).then(reload, (e) => setError(errText(e)));
  return (
    <section aria-label="Rules">
      <h3>Rules</h3>
      {error && <p class="error">{error}</p>}
      <table>
        <thead>
          <tr>
            <th>Rule</th>
            <th>On</th>
            <th>Scope</th>
            <th>Severity</th>
            <th>Channel</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(list ?? []).map((r) => (
            <tr key={r.name} data-rule={r.name}>
              <td>{r.name}</td>
              <td>
                {r.condition}
                {r.for_s ? ` for ${r.for_s}s` : ""}
              </td>
              <td>
                {r.selector ?? "every agent"}
                {r.container ? `, containers ${r.container}` : ""}
              </td>
              <td>{r.severity}</td>
              <td>{r.channel}</td>
              <td>
                <button type="button" onClick={() => remove(r.name)}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list?.length === 0 && (
        <p class="muted">
          No rules. <code>nextdeploy alert rule add NAME --on container-died --channel CH</code>
        </p>
      )}
    </section>
  );
}

function Channels(props: { api: Api }) {
  const { list, error, setError, reload } = useList<AlertChannelInfo>(props.api, "alert_channel_list");
  const [tested, setTested] = useState("");
  const test = (name: string) =>
    props.api
      .call<{ delivered: boolean; status?: number | null; error?: string | null }>("alert_channel_test", {}, { name })
      .then(
        (r) =>
          setTested(
            r.delivered ? `${name}: delivered` : `${name}: not delivered (${r.error ?? `HTTP ${r.status ?? "?"}`})`,
          ),
        (e) => setError(errText(e)),
      );
  const remove = (name: string) =>
    props.api.call("alert_channel_remove", {}, { name }).then(reload, (e) => setError(errText(e)));
  return (
    <section aria-label="Channels">
      <h3>Channels</h3>
      {error && <p class="error">{error}</p>}
      {tested && (
        <p role="status" class={tested.endsWith("delivered") ? "ok" : "bad"}>
          {tested}
        </p>
      )}
      <table>
        <thead>
          <tr>
            <th>Channel</th>
            <th>Kind</th>
            <th>Target</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(list ?? []).map((c) => (
            <tr key={c.name} data-channel={c.name}>
              <td>{c.name}</td>
              <td>{c.kind}</td>
              <td>
                {c.target}
                {c.signed ? <span class="muted"> (signed)</span> : null}
              </td>
              <td>
                <button type="button" onClick={() => test(c.name)}>
                  Test
                </button>{" "}
                <button type="button" onClick={() => remove(c.name)}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function Alerts(props: { api: Api; role: string }) {
  const firing = useRefreshed<AlertInfo>(props.api, "alert_list");
  const history = useRefreshed<AlertInfo>(props.api, "alert_history", { since: "24h", limit: HISTORY_SHOWN });
  return (
    <section>
      <h2>Alerts</h2>
      <h3>Firing now</h3>
      {firing.error && <p class="error">{firing.error}</p>}
      {firing.list && firing.list.length > 0 ? (
        <AlertTable label="Firing" list={firing.list} />
      ) : (
        firing.list && <p class="ok">Nothing is firing.</p>
      )}
      <h3>Last 24 hours</h3>
      {history.error && <p class="error">{history.error}</p>}
      {history.list && <AlertTable label="History" list={history.list} history />}
      {history.list?.length === 0 && <p class="muted">No alerts in the last 24 hours.</p>}
      <Silences api={props.api} canSilence={props.role !== "viewer"} />
      {props.role === "admin" && (
        <>
          <Rules api={props.api} />
          <Channels api={props.api} />
        </>
      )}
    </section>
  );
}
