// The alerts page in a real browser (Debian's Chromium, driven by
// playwright-core). Run by tests/tests/dashboard_alerts.rs against a hub
// with an agent, a webhook channel `ops` pointed at a receiver, a rule
// `died` (container-died) and a container of that agent that died with
// exit code 3, so one alert fires. Every wait is bounded. Environment:
//   DASH_URL         the hub's dashboard, https://127.0.0.1:PORT/
//   DASH_ADMIN       an admin token
//   DASH_VIEWER      a viewer token
//   DASH_AGENT       the agent's name
//   DASH_CONTAINER   the container that died
//   DASH_SHOTS       a directory for screenshots
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
const container = env("DASH_CONTAINER");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
  timeout: WAIT_MS,
});
const problems = [];
let phase = "start";
const check = (ok, what) => {
  if (!ok) throw new Error(what);
};

async function signIn(page, token) {
  await go(page, env("DASH_URL"));
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: agent, exact: true }).waitFor();
}

async function asAdmin(page) {
  phase = "firing";
  await signIn(page, env("DASH_ADMIN"));
  await page.getByRole("link", { name: "Alerts", exact: true }).click();
  const firing = page.getByRole("table", { name: "Firing" });
  const row = firing.locator("tbody tr").filter({ hasText: container });
  await row.waitFor();
  const text = await row.innerText();
  check(/died with exit code 3/.test(text), `the firing row says: ${text}`);
  check(/critical/.test(text) && /died/.test(text), `severity or rule missing: ${text}`);
  // The notification was delivered to the receiver.
  await row.getByText(/firing → ops: delivered/).waitFor();
  check((await row.getByRole("link", { name: container }).count()) === 1, "no link to the container");
  console.log("firing: the alert, its rule, severity, container and delivery shown");

  phase = "history";
  const hist = page.getByRole("table", { name: "History" });
  await hist.locator("tbody tr").filter({ hasText: container }).waitFor();

  phase = "silences";
  const silences = page.getByRole("region", { name: "Silences" });
  const form = silences.getByRole("form", { name: "New silence" });
  await form.getByLabel("Rule").fill("died");
  await form.getByLabel("Comment").fill("maintenance");
  await form.getByRole("button", { name: "Silence" }).click();
  const silence = silences.locator("tbody tr").filter({ hasText: "maintenance" });
  await silence.waitFor();
  check(/rules died/.test(await silence.innerText()), `the silence says: ${await silence.innerText()}`);
  await silence.getByRole("button", { name: "End" }).click();
  await silence.waitFor({ state: "detached" });
  console.log("silences: one added from the form, shown, then ended");

  phase = "rules";
  const rules = page.getByRole("region", { name: "Rules" });
  const rule = rules.locator('tr[data-rule="died"]');
  check(/container_died/.test(await rule.innerText()), "the rule's condition is not shown");
  phase = "channels";
  const channels = page.getByRole("region", { name: "Channels" });
  await channels.locator('tr[data-channel="ops"]').getByRole("button", { name: "Test" }).click();
  await channels.getByRole("status").filter({ hasText: "ops: delivered" }).waitFor();
  await page.screenshot({ path: `${shots}/alerts.png`, fullPage: true });
  console.log("admin: rules and channels shown, a channel test delivered");
}

async function asViewer(page) {
  phase = "viewer";
  await signIn(page, env("DASH_VIEWER"));
  await page.getByRole("link", { name: "Alerts", exact: true }).click();
  await page.getByRole("table", { name: "Firing" }).locator("tbody tr").filter({ hasText: container }).waitFor();
  await page.getByRole("region", { name: "Silences" }).waitFor();
  check((await page.getByRole("form", { name: "New silence" }).count()) === 0, "a viewer gets the silence form");
  check((await page.getByRole("region", { name: "Rules" }).count()) === 0, "a viewer sees the rules");
  check((await page.getByRole("region", { name: "Channels" }).count()) === 0, "a viewer sees the channels");
  console.log("viewer: the firing alert and the silences, no silence form, no rules or channels");
}

try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  // Any script error fails the test, except what nav.mjs's
  // `expected` lists (the sign-in probe, a network change).
  page.on("console", (m) => {
    if (m.type() === "error" && !expected(m)) problems.push(`${phase}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${phase}: ${e}`));
  try {
    await asAdmin(page);
    phase = "sign-out";
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    await asViewer(page);
  } catch (e) {
    await page.screenshot({ path: `${shots}/alerts-failed.png`, fullPage: true }).catch(() => {});
    const text = await page.locator("main").innerText({ timeout: 1000 }).catch(() => "");
    console.error(`page at ${page.url()} (${phase}):\n${text.slice(0, 4000)}`);
    throw e;
  }
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(`browser errors:\n${problems.join("\n")}`);
  process.exit(1);
}
console.log("alerts test passed");
