// The container page's "Deploy" tab (operators and admins): `deploy` of a
// new image to this container on this server, with the pull policy and the
// health timeout; each step live, then the outcome (deploy_run.tsx).

import { useState } from "preact/hooks";
import type { Api } from "./api";
import { RunView, useDeployRun } from "./deploy_run";

export function ContainerDeploy(props: { api: Api; agent: string; container: string; image?: string }) {
  const [image, setImage] = useState("");
  const [pull, setPull] = useState("missing");
  const [health, setHealth] = useState("300");
  const { run, start, busy } = useDeployRun(props.api);
  return (
    <section aria-label="Deploy">
      <form
        class="form"
        aria-label="Deploy this container"
        onSubmit={(e) => {
          e.preventDefault();
          start(
            { server: props.agent },
            { image: image.trim(), container: props.container, pull, health_timeout_s: Number(health) },
          );
        }}
      >
        <label>
          Server
          <input aria-label="Server" value={props.agent} readOnly />
        </label>
        <label>
          Container
          <input aria-label="Container" value={props.container} readOnly />
        </label>
        <label>
          Image
          <input
            aria-label="Image"
            placeholder={props.image ? `now ${props.image}` : "myapp:2.1"}
            value={image}
            onInput={(e) => setImage(e.currentTarget.value)}
          />
        </label>
        <label>
          Pull policy
          <select aria-label="Pull policy" value={pull} onChange={(e) => setPull(e.currentTarget.value)}>
            <option value="missing">missing</option>
            <option value="always">always</option>
            <option value="never">never</option>
          </select>
        </label>
        <label>
          Health timeout (s)
          <input type="number" min="1" value={health} onInput={(e) => setHealth(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={busy || !image.trim()}>
          Deploy
        </button>
      </form>
      {run && <RunView run={run} fleet={false} />}
    </section>
  );
}
