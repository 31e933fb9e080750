// Silences on the alerts page: the ones not ended (every role reads them,
// `alert_silence_list`), and for operators and admins a form that adds one
// (`alert_silence_add`: a selector, a container glob, a rule glob, at
// least one of them, and how long) and an End button on each
// (`alert_silence_remove`). What a silence held and still fires is sent
// when it ends; the hub says so in the alerts' history.

import { useState } from "preact/hooks";
import type { Api } from "./api";
import { errText, useList } from "./admin";
import type { SilenceInfo } from "./types";

/** The durations the form offers, in seconds (the hub allows up to 30 days). */
const DURATIONS: [string, number][] = [
  ["1 hour", 3600],
  ["2 hours", 7200],
  ["8 hours", 8 * 3600],
  ["1 day", 86400],
  ["1 week", 7 * 86400],
];

function scope(s: SilenceInfo): string {
  const parts = [
    s.selector ? `agents ${s.selector}` : "",
    s.container ? `containers ${s.container}` : "",
    s.rule ? `rules ${s.rule}` : "",
  ];
  return parts.filter(Boolean).join(", ");
}

function AddSilence(props: { api: Api; onAdded: () => void }) {
  const [f, setF] = useState({ selector: "", container: "", rule: "", comment: "", for_s: 7200 });
  const [error, setError] = useState("");
  const set = (k: keyof typeof f) => (e: Event) =>
    setF({ ...f, [k]: k === "for_s" ? Number((e.target as HTMLSelectElement).value) : (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    const opt = (v: string) => (v.trim() ? v.trim() : undefined);
    try {
      await props.api.call("alert_silence_add", {}, {
        selector: opt(f.selector),
        container: opt(f.container),
        rule: opt(f.rule),
        comment: opt(f.comment),
        for_s: f.for_s,
      });
      setError("");
      setF({ ...f, selector: "", container: "", rule: "", comment: "" });
      props.onAdded();
    } catch (err) {
      setError(errText(err));
    }
  };
  return (
    <form class="inline" aria-label="New silence" onSubmit={submit}>
      <label>
        Selector <input value={f.selector} onInput={set("selector")} placeholder="env=staging" />
      </label>{" "}
      <label>
        Container <input value={f.container} onInput={set("container")} placeholder="web*" />
      </label>{" "}
      <label>
        Rule <input value={f.rule} onInput={set("rule")} placeholder="hot" />
      </label>{" "}
      <label>
        For{" "}
        <select value={f.for_s} onChange={set("for_s")}>
          {DURATIONS.map(([t, s]) => (
            <option key={s} value={s}>
              {t}
            </option>
          ))}
        </select>
      </label>{" "}
      <label>
        Comment <input value={f.comment} onInput={set("comment")} />
      </label>{" "}
      <button type="submit">Silence</button>
      {error && <p class="error">{error}</p>}
    </form>
  );
}

export function Silences(props: { api: Api; canSilence: boolean }) {
  const { list, error, setError, reload } = useList<SilenceInfo>(props.api, "alert_silence_list");
  const end = (id: string) =>
    props.api.call("alert_silence_remove", {}, { id }).then(reload, (e) => setError(errText(e)));
  return (
    <section aria-label="Silences">
      <h3>Silences</h3>
      {error && <p class="error">{error}</p>}
      {props.canSilence && <AddSilence api={props.api} onAdded={reload} />}
      {list && list.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th>Holds</th>
              <th>Until</th>
              <th>By</th>
              <th>Comment</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((s) => (
              <tr key={s.id} data-silence={s.id}>
                <td>{scope(s)}</td>
                <td class="t">{new Date(s.ends_at).toLocaleString()}</td>
                <td>{s.created_by}</td>
                <td>{s.comment ?? ""}</td>
                <td>
                  {props.canSilence && (
                    <button type="button" onClick={() => end(s.id)}>
                      End
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        list && <p class="muted">No silences.</p>
      )}
    </section>
  );
}
