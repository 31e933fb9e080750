// The events, deploys and admin pages in a real browser (Debian's Chromium
// via playwright-core). Run by tests/tests/dashboard_admin.rs against a hub
// with one agent, a running container and a broken image; every wait is
// bounded. Environment:
//   DASH_URL        the hub's dashboard, https://127.0.0.1:PORT/
//   DASH_TOKEN      an admin API token to sign in with
//   DASH_AGENT      the agent's name
//   DASH_WEB        a running container the test restarts, then deploys to
//   DASH_BAD_IMAGE  an image whose health check fails
//   DASH_SHOTS      a directory for screenshots
// It prints "events: open" when the Events page is following, and waits for
// the test to restart DASH_WEB through the CLI.
import { chromium } from "playwright-core";
import { expected, go } from "./nav.mjs";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const WAIT_MS = 20000;
/** The whole deploy: a failing health check, the rollback (timeout 30 s). */
const DEPLOY_MS = 60000;
/** How soon a page whose token was revoked must be back at the sign-in. */
const SIGNED_OUT_MS = 5000;
const url = (p) => new URL(p, env("DASH_URL")).href;
const shots = env("DASH_SHOTS");
const agent = env("DASH_AGENT");
const web = env("DASH_WEB");
const VIEWER = "dash-viewer";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
  timeout: WAIT_MS,
});
const problems = [];
async function signedIn(context, token, watch) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  if (watch) {
    // A CSP violation or a script error fails the test (but not what
    // nav.mjs's `expected` lists: the sign-in probe, a network change).
    page.on("console", (m) => {
      if (m.type() === "error" && !expected(m)) problems.push(m.text());
    });
  }
  page.on("pageerror", (e) => problems.push(String(e)));
  await go(page, url("/"));
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: agent, exact: true }).waitFor();
  return page;
}
try {
  // The hub's certificate is self-signed; the test pins it on its own side.
  const admin = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await signedIn(admin, env("DASH_TOKEN"), true);

  // Admin: a viewer token, shown once.
  await page.getByRole("link", { name: "Admin", exact: true }).click();
  const tokens = page.getByRole("region", { name: "API tokens" });
  await tokens.getByLabel("Token name").fill(VIEWER);
  await tokens.getByLabel("Role").selectOption("viewer");
  await tokens.getByRole("button", { name: "Create token" }).click();
  const secret = await tokens.getByRole("status", { name: "New API token" }).locator("code").textContent();
  if (!/^nda_\S+$/.test(secret)) throw new Error(`the new token reads ${secret}`);
  await tokens.getByRole("cell", { name: VIEWER, exact: true }).waitFor();
  console.log("admin: viewer token created and shown once");

  // A join token and its enrol command.
  const join = page.getByRole("region", { name: "Join tokens" });
  await join.getByLabel("Agent name").fill("edge-1");
  await join.getByLabel("Labels").fill("env=test");
  await join.getByRole("button", { name: "Create join token" }).click();
  const command = await join.getByRole("status").locator("code").textContent();
  if (!/^nextdeploy-agent enroll --hub \S+:\d+ --token ndj_\S+$/.test(command)) {
    throw new Error(`the enrol command reads ${command}`);
  }
  await join.getByRole("cell", { name: "edge-1", exact: true }).waitFor();
  console.log("admin: join token created, enrol command shown");

  // The audit log lists the token's creation.
  const audit = page.getByRole("region", { name: "Audit log" });
  await audit.getByRole("button", { name: "Refresh" }).click();
  await audit.getByRole("row").filter({ hasText: "create_token" }).filter({ hasText: `${VIEWER} (viewer)` }).waitFor();
  await page.screenshot({ path: `${shots}/admin.png`, fullPage: true });
  console.log("admin: audit log lists create_token");

  // Shown once: after a reload the secret is nowhere in the page.
  await page.reload();
  await audit.getByRole("row").filter({ hasText: "create_token" }).first().waitFor();
  if ((await page.content()).includes(secret)) throw new Error("the token is still shown after a reload");
  console.log("admin: the token is gone after a reload");

  // Events: the test restarts the container through the CLI.
  await page.getByRole("link", { name: "Events", exact: true }).click();
  const events = page.getByRole("table", { name: "Events" });
  await page.getByText(/^live/).waitFor();
  console.log("events: open");
  const restart = events.getByRole("row").filter({ hasText: web }).filter({ has: page.getByRole("cell", { name: "restart", exact: true }) });
  await restart.first().waitFor({ timeout: WAIT_MS * 2 });
  await page.getByLabel("Container").fill(web);
  await page.getByLabel("Kind and action").selectOption("container restart");
  await restart.first().waitFor();
  await page.screenshot({ path: `${shots}/events.png`, fullPage: true });
  console.log("events: the container's restart shown");
  await page.getByRole("button", { name: "Pause" }).click();
  await page.getByText(/^paused/).waitFor();
  await page.getByRole("button", { name: "Resume" }).click();
  await page.getByText(/^live/).waitFor();

  // New deploy of the broken image: rolled back, health the failed step.
  await page.getByRole("link", { name: "Deploys", exact: true }).click();
  await page.getByRole("link", { name: "New deploy" }).click();
  await page.getByLabel("Server", { exact: true }).selectOption(agent);
  await page.getByLabel("Image", { exact: true }).fill(env("DASH_BAD_IMAGE"));
  await page.getByLabel("Container", { exact: true }).fill(web);
  await page.getByLabel("Health timeout (s)", { exact: true }).fill("30");
  await page.getByRole("button", { name: "Deploy" }).click();
  const progress = page.getByRole("region", { name: "Deploy progress" });
  await progress.getByRole("cell", { name: "accepted", exact: true }).waitFor();
  console.log("deploy: started, steps arriving");
  const containers = progress.getByRole("table", { name: "Containers" });
  await containers.getByRole("cell", { name: "rolled back", exact: true }).waitFor({ timeout: DEPLOY_MS });
  await containers.getByRole("cell", { name: "health", exact: true }).waitFor();
  await progress.getByRole("cell", { name: "rollback", exact: true }).first().waitFor();
  await progress.locator("pre.tail", { hasText: "app sick serving on 8080" }).waitFor();
  await page.screenshot({ path: `${shots}/deploy-new.png`, fullPage: true });
  console.log("deploy: rolled back, failed step health, log tail shown");

  await progress.getByRole("link").first().click();
  await page.getByRole("table", { name: "Containers" }).getByRole("cell", { name: "rolled back", exact: true }).waitFor();
  await page.getByRole("table", { name: "Steps" }).getByRole("cell", { name: "rollback", exact: true }).first().waitFor();
  await page.screenshot({ path: `${shots}/deploy.png`, fullPage: true });
  await page.getByRole("link", { name: "Deploys", exact: true }).first().click();
  await page.getByRole("table", { name: "Deploys" }).getByRole("cell", { name: "rolled back", exact: true }).first().waitFor();
  await page.screenshot({ path: `${shots}/deploys.png`, fullPage: true });
  console.log("deploys: the deploy's page and the history show the rollback");

  // The same image to every agent labelled suite=deploy: the counts.
  await go(page, url("/deploys/new"));
  await page.getByLabel("Target", { exact: true }).selectOption("selector");
  await page.getByLabel("Selector", { exact: true }).fill("suite=deploy");
  await page.getByLabel("Image", { exact: true }).fill(env("DASH_BAD_IMAGE"));
  await page.getByLabel("Container", { exact: true }).fill(web);
  await page.getByLabel("Health timeout (s)", { exact: true }).fill("30");
  await page.getByLabel("Batch size", { exact: true }).fill("1");
  await page.getByRole("button", { name: "Deploy" }).click();
  await progress.getByText("updated 0 · failed (rolled back) 1 · untouched 0").waitFor({ timeout: DEPLOY_MS });
  await progress.getByRole("heading", { name: "Finished" }).waitFor();
  await progress.getByRole("table", { name: "Containers" }).getByRole("cell", { name: "health", exact: true }).waitFor();
  await progress.getByRole("link", { name: /^deploy / }).waitFor();
  await page.screenshot({ path: `${shots}/deploy-fleet.png`, fullPage: true });
  console.log("deploy: by selector, 1 failed (rolled back), counted");

  // A second browser signed in with the viewer token: no Admin link; revoked
  // from the Admin page, it is back at the sign-in within seconds.
  const other = await signedIn(await browser.newContext({ ignoreHTTPSErrors: true }), secret, false);
  if (await other.getByRole("link", { name: "Admin", exact: true }).count()) {
    throw new Error("a viewer sees the Admin link");
  }
  await go(page, url("/admin"));
  // The agent's key rotated after a confirmation; the join token deleted.
  const agents = page.getByRole("region", { name: "Agents" });
  await agents.getByRole("button", { name: "Rotate key" }).click();
  await agents.getByRole("alertdialog", { name: "Confirm" }).getByRole("button", { name: "Confirm" }).click();
  await agents.getByText(new RegExp(`^${agent}: new key SHA256:`)).waitFor();
  await join.getByRole("button", { name: "Delete join token edge-1" }).click();
  await join.getByRole("cell", { name: "edge-1", exact: true }).waitFor({ state: "detached" });
  console.log("admin: agent key rotated, join token deleted");
  await page.getByRole("button", { name: `Revoke token ${VIEWER}` }).click();
  const revoked = Date.now();
  await other.getByLabel("API token").waitFor({ timeout: SIGNED_OUT_MS });
  await other.screenshot({ path: `${shots}/revoked.png`, fullPage: true });
  console.log(`revoke: the viewer's page signed out after ${Date.now() - revoked} ms`);
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(`browser errors:\n${problems.join("\n")}`);
  process.exit(1);
}
console.log("admin test passed");
