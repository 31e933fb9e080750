// A page of another origin tries to use the dashboard's session cookie, in
// a real browser (Debian's Chromium via playwright-core). Run by
// tests/tests/dashboard_origin.rs. The attacker's page is served over HTTPS
// on the hub's own host and another port (https://127.0.0.1:EVIL): the same
// *site*, so SameSite=Strict does not stop the browser from sending the
// cookie and only the hub's own checks stand in the way. Environment:
//   DASH_URL          the hub's dashboard, https://127.0.0.1:PORT/
//   DASH_TOKEN        an admin API token (the victim signs in with it)
//   DASH_ADMIN_NAME   that token's name
//   DASH_VIEWER       a viewer token (the attacker's, for a login CSRF)
//   DASH_CERT/KEY     a certificate and key for the attacker's server
//   DASH_EVIL_PORT    the attacker's port (the hub allows its origin for
//                     bearer-token scripts with --allowed-origin)
//   DASH_SHOTS        a directory for screenshots
// Prints "origin test passed" at the end; every wait is bounded.
import { chromium } from "playwright-core";
import { go } from "./nav.mjs";
import { readFileSync } from "node:fs";
import { createServer } from "node:https";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const WAIT_MS = 20000;
/** How long the attacker's WebSocket may take to be refused. */
const WS_MS = 10000;
const hub = new URL(env("DASH_URL"));
const wsUrl = `wss://${hub.host}/ws`;
const sessionUrl = new URL("/api/session", hub).href;
const evilOrigin = `https://127.0.0.1:${env("DASH_EVIL_PORT")}`;

// A form that posts a JSON-looking text/plain body (no preflight) to sign
// the victim in as the attacker: a login CSRF.
const body = JSON.stringify({ token: env("DASH_VIEWER") });
const [name, value] = [body.slice(0, -2) + '", "x": "', '"}'];
const page_html = `<!doctype html><title>elsewhere</title>
<form id="csrf" method="POST" action="${sessionUrl}" enctype="text/plain">
<input type="hidden" name='${name}' value='${value}'></form>`;
const server = createServer(
  { cert: readFileSync(env("DASH_CERT")), key: readFileSync(env("DASH_KEY")) },
  (_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(page_html);
  },
);
await new Promise((ok) => server.listen(Number(env("DASH_EVIL_PORT")), "127.0.0.1", ok));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
  timeout: WAIT_MS,
});
const fail = (what) => {
  throw new Error(what);
};
async function whoAmI(page) {
  return page.evaluate((u) => fetch(u).then((r) => (r.ok ? r.json() : { status: r.status })), sessionUrl);
}
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const victim = await context.newPage();
  victim.setDefaultTimeout(WAIT_MS);
  await go(victim, hub.href);
  await victim.getByLabel("API token").fill(env("DASH_TOKEN"));
  await victim.getByRole("button", { name: "Sign in" }).click();
  await victim.getByRole("link", { name: "Events" }).waitFor();
  const before = await whoAmI(victim);
  if (before.name !== env("DASH_ADMIN_NAME")) fail(`signed in as ${JSON.stringify(before)}`);
  const cookies = await context.cookies(hub.href);
  if (!cookies.some((c) => c.name === "__Host-nd_session")) fail("no session cookie after sign-in");

  // The attacker's page, in the same browser (so with the same cookies).
  const evil = await context.newPage();
  evil.setDefaultTimeout(WAIT_MS);
  await go(evil, `${evilOrigin}/`);
  const results = await evil.evaluate(
    async ([ws, session, waitMs]) => {
      const socket = await new Promise((done) => {
        const s = new WebSocket(ws);
        const t = setTimeout(() => done("no answer"), waitMs);
        s.onopen = () => (clearTimeout(t), s.close(), done("open"));
        s.onclose = (e) => (clearTimeout(t), done(`closed ${e.code}`));
      });
      const attempt = (init) =>
        fetch(session, { credentials: "include", ...init }).then(
          (r) => `read ${r.status}`,
          (e) => `blocked ${e.name}`,
        );
      return {
        socket,
        read: await attempt({}),
        signOut: await attempt({ method: "DELETE" }),
        jsonSignIn: await attempt({
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
        }),
      };
    },
    [wsUrl, sessionUrl, WS_MS],
  );
  console.log("attacker's page:", JSON.stringify(results));
  if (results.socket === "open") fail("a foreign page opened the WebSocket with the cookie");
  for (const k of ["read", "signOut", "jsonSignIn"]) {
    if (!results[k].startsWith("blocked")) fail(`${k} from a foreign page was answered: ${results[k]}`);
  }

  // The login CSRF: a plain form post, which browsers send without asking.
  const [answer] = await Promise.all([
    evil.waitForNavigation(),
    evil.evaluate(() => document.getElementById("csrf").submit()),
  ]);
  const status = answer?.status();
  const text = await evil.textContent("body");
  console.log(`form post from a foreign page: ${status} ${text.trim()}`);
  if (status !== 403) fail(`the form post was answered ${status}`);
  await evil.screenshot({ path: `${env("DASH_SHOTS")}/foreign-origin.png` });

  // The victim is still themselves, signed in, with a working WebSocket.
  await victim.reload();
  await victim.getByRole("link", { name: "Events" }).waitFor();
  const after = await whoAmI(victim);
  if (after.name !== env("DASH_ADMIN_NAME")) fail(`after the attack: ${JSON.stringify(after)}`);
  const own = await victim.evaluate(
    (ws) =>
      new Promise((done) => {
        const s = new WebSocket(ws);
        s.onopen = () => (s.close(), done("open"));
        s.onclose = (e) => done(`closed ${e.code}`);
      }),
    wsUrl,
  );
  if (own !== "open") fail(`the hub's own page could not open its WebSocket: ${own}`);
  console.log("origin test passed");
} finally {
  await browser.close();
  server.close();
}
