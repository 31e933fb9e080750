// The dashboard in a real browser (Debian's Chromium, driven by
// playwright-core, which downloads no browser of its own). Run by
// tests/tests/dashboard_browser.rs against a hub with an agent and two
// containers; every wait is bounded. Environment:
//   DASH_URL       the hub's dashboard, https://127.0.0.1:PORT/
//   DASH_TOKEN     an API token to sign in with
//   DASH_AGENT     the agent's name
//   DASH_TICK      a container writing "tick N" every 300 ms
//   DASH_STDERR    a container that wrote "stderr last" on stderr
//   DASH_SHOTS     a directory for screenshots
import { chromium } from "playwright-core";
import { expected, go } from "./nav.mjs";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const WAIT_MS = 20000;
const shots = env("DASH_SHOTS");
const agent = env("DASH_AGENT");
const tick = env("DASH_TICK");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
  timeout: WAIT_MS,
});
const problems = [];
try {
  // The hub's certificate is self-signed; the test pins it on its own side.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  // A CSP violation or a script error fails the test.
  // (Except what `expected` lists: the sign-in probe, a network change.)
  page.on("console", (m) => {
    if (m.type() === "error" && !expected(m)) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(String(e)));
  // One WebSocket per page load: more means the app reconnects in a loop.
  let sockets = 0;
  page.on("websocket", () => sockets++);

  await go(page, env("DASH_URL"));
  await page.getByLabel("API token").fill(env("DASH_TOKEN"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: agent, exact: true }).waitFor();
  await page.screenshot({ path: `${shots}/fleet.png`, fullPage: true });
  console.log("fleet: agent link shown");

  // The counts, a label selector (the agent's labels are suite=docker,...),
  // an invalid one, and sorting by name.
  await page.getByTestId("fleet-counts").filter({ hasText: /Agents: 1 online, 0 offline, 1 total/ }).waitFor();
  const link = page.getByRole("link", { name: agent, exact: true });
  const selector = page.getByLabel("Label selector");
  await selector.fill("suite=nomatch");
  await link.waitFor({ state: "detached" });
  await selector.fill("suite=docker");
  await link.waitFor();
  await selector.fill("suite=a b");
  await page.getByRole("alert").filter({ hasText: "Invalid selector" }).waitFor();
  await selector.fill("");
  await page.getByRole("alert").waitFor({ state: "detached" });
  const nameHeader = page.getByRole("columnheader", { name: /Agent/ });
  if ((await nameHeader.getAttribute("aria-sort")) !== "ascending") throw new Error("not sorted by name at first");
  await nameHeader.getByRole("button").click();
  await page.getByRole("columnheader", { name: /Agent/ }).and(page.locator('[aria-sort="descending"]')).waitFor();
  await link.waitFor();
  console.log("fleet: counts, label selector (match, no match, invalid) and sorting by name");

  // The host's CPU (after the agent's second sweep) and memory in its row,
  // and the host columns sort like the others.
  const row = page.getByRole("row").filter({ has: link });
  const hostCpu = row.getByTestId("host-cpu").filter({ hasText: /^\d{1,3} %$/ });
  const hostMem = row.getByTestId("host-mem").filter({ hasText: /^\d+\.\d \/ \d+\.\d GiB$/ });
  await hostCpu.waitFor();
  await hostMem.waitFor();
  const cpuShown = Number((await hostCpu.textContent()).split(" ")[0]);
  if (!(cpuShown >= 0 && cpuShown <= 100)) throw new Error(`host CPU ${cpuShown} %`);
  const [used, total] = (await hostMem.textContent()).split(" ").filter((x) => /\d/.test(x)).map(Number);
  if (!(used > 0 && used <= total)) throw new Error(`host memory ${used} / ${total} GiB`);
  for (const title of ["Host CPU", "Host memory"]) {
    const header = page.getByRole("columnheader", { name: new RegExp(`^${title}`) });
    await header.getByRole("button").click();
    await header.and(page.locator('[aria-sort="ascending"]')).waitFor();
    await link.waitFor();
  }
  console.log(`fleet: host CPU ${cpuShown} %, memory ${used} / ${total} GiB, both columns sort`);

  await page.getByRole("link", { name: agent, exact: true }).click();
  await page.getByRole("link", { name: tick, exact: true }).click();
  const logs = page.getByRole("region", { name: "Logs" });
  await logs.waitFor();
  const first = logs.locator("div.stdout", { hasText: /^tick \d+$/ }).last();
  await first.waitFor();
  const seen = Number((await first.textContent()).split(" ")[1]);
  // A line written after the view opened arrives while following.
  const later = `tick ${seen + 2}`;
  await logs.locator("div.stdout", { hasText: new RegExp(`^${later}$`) }).waitFor();
  await page.screenshot({ path: `${shots}/logs.png`, fullPage: true });
  console.log(`logs: saw "${later}" arrive after "tick ${seen}"`);

  await go(page, new URL(`/agents/${agent}/containers/${env("DASH_STDERR")}`, env("DASH_URL")).href);
  await logs.locator("div.stderr", { hasText: /^stderr last$/ }).waitFor();
  await logs.locator("div.stdout", { hasText: /^stdout last$/ }).waitFor();
  console.log("logs: stderr and stdout told apart");

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("API token").waitFor();
  const session = await page.evaluate(async () => (await fetch("/api/session")).status);
  if (session !== 401) throw new Error(`after sign-out GET /api/session is ${session}`);
  console.log("sign-out: back to the sign-in page, session gone");
  // Two page loads (the sign-in, the goto of the second container).
  if (sockets > 2) problems.push(`${sockets} WebSockets opened for two page loads`);
} catch (e) {
  // What the page showed when a wait ran out: the next failure says why.
  for (const page of browser.contexts().flatMap((c) => c.pages())) {
    console.error(`failed at ${page.url()}; the page said:\n${await page.innerText("body").catch(String)}`);
    await page.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
  }
  console.error(`browser errors so far:\n${problems.join("\n")}`);
  throw e;
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(`browser errors:\n${problems.join("\n")}`);
  process.exit(1);
}
console.log("browser test passed");
