import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { Admin } from "./admin_page";
import { Api, currentSession, signOut } from "./api";
import { Agent } from "./agent";
import { Alerts } from "./alerts";
import { Container } from "./container";
import { NewDeploy } from "./deploy_form";
import { Deploy, Deploys } from "./deploys";
import { Events } from "./events";
import { ExecSessions } from "./exec_sessions";
import { Fleet } from "./fleet";
import { Link } from "./link";
import { match, navigate, usePath } from "./router";
import { SignIn } from "./signin";
import type { Session } from "./types";
import "./style.css";

function Page(props: { api: Api; path: string; role: string }) {
  if (props.path === "/events") return <Events api={props.api} />;
  if (props.path === "/alerts") return <Alerts api={props.api} role={props.role} />;
  if (props.path === "/deploys") return <Deploys api={props.api} canDeploy={props.role !== "viewer"} />;
  if (props.path === "/deploys/new" && props.role !== "viewer") return <NewDeploy api={props.api} />;
  const d = match(/^\/deploys\/([^/]+)\/?$/, props.path);
  if (d) return <Deploy api={props.api} id={d[0]} />;
  if (props.path === "/admin" && props.role === "admin") return <Admin api={props.api} />;
  if (props.path === "/exec-sessions" && props.role === "admin") return <ExecSessions api={props.api} />;
  const c = match(/^\/agents\/([^/]+)\/containers\/([^/]+)\/?$/, props.path);
  if (c) return <Container api={props.api} agent={c[0]} name={c[1]} />;
  const a = match(/^\/agents\/([^/]+)\/?$/, props.path);
  if (a) return <Agent api={props.api} name={a[0]} />;
  if (props.path === "/") return <Fleet api={props.api} />;
  return (
    <p>
      No such page. <Link href="/">Fleet</Link>
    </p>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const path = usePath();
  // One connection per signed-in token: a new one after signing in again.
  const api = useMemo(() => new Api(), [session?.id]);
  const check = () => currentSession().then(setSession, () => setSession(null));
  useEffect(() => {
    check();
  }, []);
  useEffect(() => {
    // The hub closes the socket when the session or its token ends.
    api.onClose = () => check();
    return () => {
      api.onClose = () => {};
      api.close();
    };
  }, [api]);
  if (session === undefined) return <p>Loading…</p>;
  if (session === null) return <SignIn onSignedIn={check} />;
  return (
    <>
      <header>
        <nav>
          <Link href="/">NextDeploy</Link>
          <Link href="/events">Events</Link>
          <Link href="/deploys">Deploys</Link>
          <Link href="/alerts">Alerts</Link>
          {session.role === "admin" && <Link href="/exec-sessions">Exec sessions</Link>}
          {session.role === "admin" && <Link href="/admin">Admin</Link>}
        </nav>
        <span class="who">
          {session.name} ({session.role})
          <button
            type="button"
            onClick={async () => {
              await signOut();
              setSession(null);
              navigate(location.pathname);
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      <main>
        <Page api={api} path={path} role={session.role} />
      </main>
    </>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
