// What the browser tests share: `eid demo --web --json` as a child process,
// `eid app` against its phone (the real core), Debian's Chromium driven by
// playwright-core, and screenshots under target/browser/ (CI artifacts).
//
// Nothing here downloads a browser: Chromium is /usr/bin/chromium
// (scripts/test-browser.sh installs it with apt-get), and everything runs on
// 127.0.0.1.
import { spawn, execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '../..');
export const SCREENSHOTS = resolve(ROOT, 'target/browser');
/** The `eid` binary (scripts/test-browser.sh builds it and sets EID_BIN). */
export const EID = process.env.EID_BIN ?? resolve(ROOT, 'target/debug/eid');
/** The PIN `eid demo` activates the phone with (docs: README, `eid demo`). */
const DEMO_PIN = '384726';

/** The environment of every child: no EID_ variable of ours leaks in. */
function baseEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('EID_')) env[k] = v;
  }
  // Cheap PIN keys for the test phone (the production cost is calibrated).
  env.EID_KDF_ITERATIONS = '1000';
  return { ...env, ...extra };
}

/**
 * Starts `eid --json demo --web` and waits for its line. `serverEnv` sets
 * the embedded server's EID_SERVER_* settings (e.g. a short request
 * lifetime). Returns the line and `stop()` (SIGINT: the demo cleans up).
 */
export async function startDemo(serverEnv = {}) {
  const child = spawn(EID, ['--json', 'demo', '--web'], {
    env: baseEnv(serverEnv),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const lines = createInterface({ input: child.stdout });
  const ready = await new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGINT');
      fail(new Error(`eid demo --web did not start: ${stderr}`));
    }, 30_000);
    lines.once('line', (line) => { clearTimeout(timer); ok(JSON.parse(line)); });
    child.once('exit', (code) => { clearTimeout(timer); fail(new Error(`eid demo --web exited ${code}: ${stderr}`)); });
  });
  const exited = new Promise((ok) => child.once('exit', (code, signal) => ok({ code, signal })));
  return {
    ready,
    /** What the demo (and its embedded server) wrote to stderr so far. */
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null) child.kill('SIGINT');
      return exited;
    },
  };
}

/**
 * Starts `eid demo --web --phone-loop on` in text mode: the built-in phone
 * reads its answers from `answer(line)`. Returns the bank URL and the SPKI
 * hash read from the text, the output so far (`output()`), and `stop()`.
 */
export async function startDemoWithPhone() {
  const child = spawn(EID, ['demo', '--web', '--phone-loop', 'on'], {
    env: baseEnv(),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const exited = new Promise((ok) => child.once('exit', (code, signal) => ok({ code, signal })));
  const deadline = Date.now() + 30_000;
  while (!/phone: waiting for a login/.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      throw new Error(`eid demo --web --phone-loop on did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const ready = {
    bank_url: out.match(/open the bank:\s+(\S+)/)[1],
    spki_sha256_base64: out.match(/--ignore-certificate-errors-spki-list=([^\s)]+)/)[1],
    user_id: out.match(/type the user ID (\S+)/)[1],
  };
  return {
    ready,
    output: () => out,
    answer: (line) => child.stdin.write(`${line}\n`),
    async stop() {
      if (child.exitCode === null) child.kill('SIGINT');
      return exited;
    },
  };
}

/** `eid --json app ...` against the demo's phone: exit code and JSON. */
export function app(ready, args, { pin = false } = {}) {
  const env = baseEnv(ready.app_env);
  if (pin) env.EID_PIN = DEMO_PIN;
  return new Promise((ok, fail) => {
    execFile(EID, ['--json', 'app', ...args], { env }, (err, stdout, stderr) => {
      try {
        ok({ code: err ? err.code : 0, json: JSON.parse(stdout.trim()) });
      } catch {
        fail(new Error(`eid app ${args[0]} printed no JSON: ${stdout} ${stderr}`));
      }
    });
  });
}

/** The one pending request on the demo's phone (polls until it arrived). */
export async function pendingRequest(ready) {
  for (let i = 0; i < 20; i++) {
    const { code, json } = await app(ready, ['open']);
    if (code !== 0) throw new Error(`eid app open: ${JSON.stringify(json)}`);
    if (json.requests.length === 1) return json.requests[0];
    if (json.requests.length > 1) throw new Error(`more than one request: ${JSON.stringify(json)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('no request reached the phone');
}

/**
 * Debian's Chromium, headless, trusting exactly the broker's self-signed
 * key: its SPKI hash on --ignore-certificate-errors-spki-list (no blanket
 * ignoreHTTPSErrors). Playwright gives each launch a fresh --user-data-dir.
 */
export async function launchBrowser(ready) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--ignore-certificate-errors-spki-list=${ready.spki_sha256_base64}`,
    ],
  });
}

/** Saves a screenshot of the page as target/browser/<name>.png. */
export async function shot(page, name) {
  await page.screenshot({ path: resolve(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/**
 * From the bank's front page to the login page's step 1: clicks
 * "Log på Netbank" and waits for the hosted login page.
 */
export async function openLogin(page, ready, name) {
  await page.goto(ready.bank_url);
  await shot(page, `${name}-1-bank`);
  await page.getByRole('button', { name: 'Log på Netbank' }).click();
  await page.waitForURL(/\/oidc\/login\/[^/?]+$/);
  await page.locator('#user-id').waitFor();
  await shot(page, `${name}-2-user-id`);
}

/** Step 1 → step 2: types the user ID, continues, returns the binding code. */
export async function enterUserId(page, ready, name) {
  await page.fill('#user-id', ready.user_id);
  await page.click('#continue');
  // Whatever page comes next: the code, or a refusal worth quoting.
  await page.locator('#binding-code, #outcome, body > pre, #user-id-error').first().waitFor();
  if (await page.locator('#binding-code').count() === 0) {
    await shot(page, `${name}-3-no-code`);
    const said = (await page.textContent('body')).trim().slice(0, 300);
    throw new Error(`no binding code after the user ID (at ${page.url()}): ${said}`);
  }
  return readBindingCode(page, name);
}

/** The binding code of step 2, spaces stripped. */
export async function readBindingCode(page, name) {
  const code = page.locator('#binding-code');
  await code.waitFor();
  await shot(page, `${name}-3-code`);
  return (await code.textContent()).replace(/\s+/g, '');
}
