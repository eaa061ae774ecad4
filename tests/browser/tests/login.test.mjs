// The hosted login page in a real browser (Debian's Chromium): a person logs
// in at the demo bank with their user ID and decides on the phone (`eid app`,
// the real core). Each test has its own `eid demo --web` (its own broker,
// person, phone and bank) and its own browser, so that no rate limit, fraud
// hold or cookie of one test reaches another.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  app, enterUserId, launchBrowser, openLogin, pendingRequest, readBindingCode, shot, startDemo,
  startDemoWithPhone,
} from '../lib.mjs';

const SUBSTANTIAL = 'https://data.gov.dk/concept/core/nsis/loa/Substantial';

/** A demo, a browser and one page; `run` gets them; everything stops after. */
async function withDemo(run, { serverEnv = {}, context = {} } = {}) {
  const demo = await startDemo(serverEnv);
  const browser = await launchBrowser(demo.ready);
  try {
    const ctx = await browser.newContext(context);
    // A step that does not come fails within seconds, not Playwright's 30.
    ctx.setDefaultTimeout(10_000);
    const page = await ctx.newPage();
    await run({ ready: demo.ready, browser, page });
  } finally {
    await browser.close();
    const { code } = await demo.stop();
    assert.equal(code, 0, 'eid demo --web stops cleanly on Ctrl-C');
  }
}

/** Waits for the bank's "logged in" page and checks what it shows. */
async function expectLoggedIn(page, ready, request, name) {
  await page.waitForURL(`${ready.bank_url}callback?**`, { timeout: 15_000 });
  await page.locator('#logged-in').waitFor();
  await shot(page, `${name}-9-bank-logged-in`);
  assert.equal(await page.textContent('#logged-in'), 'Du er logget ind');
  const sub = await page.textContent('#sub');
  assert.match(sub, /^[A-Za-z0-9_-]{16,}$/, 'the pairwise subject is base64url');
  assert.ok(!sub.includes(ready.user_id), 'the subject is not the user ID');
  assert.equal(await page.textContent('#acr'), SUBSTANTIAL);
  assert.equal(await page.textContent('#amr'), 'code_app');
  assert.equal(await page.textContent('#request-id'), request.request_id);
}

test('a person logs in at the bank with the user ID and approves in the app', async () => {
  await withDemo(async ({ ready, page }) => {
    await openLogin(page, ready, 'approve');
    const code = await enterUserId(page, ready, 'approve');
    assert.match(code, /^[A-Z2-7]{8}$/, 'eight base32 letters');
    assert.ok(await page.locator('#qr').isVisible(), 'the QR of the same code');
    assert.ok(await page.locator('#countdown').isVisible());
    const request = await pendingRequest(ready);
    assert.equal(request.kind, 'login');
    assert.equal(request.provider_name, 'Danske Eksempel Bank');
    const { code: exit, json } = await app(
      ready, ['approve', '--request', request.request_id, '--binding-code', code], { pin: true });
    assert.equal(exit, 0, JSON.stringify(json));
    await expectLoggedIn(page, ready, request, 'approve');
  });
});

for (const [verb, name] of [['deny', 'deny'], ['report', 'this-was-not-me']]) {
  test(`a login refused in the app (${verb}) ends at the bank as "Login afvist"`, async () => {
    await withDemo(async ({ ready, page }) => {
      await openLogin(page, ready, name);
      await enterUserId(page, ready, name);
      const request = await pendingRequest(ready);
      const { code, json } = await app(ready, [verb, '--request', request.request_id]);
      assert.equal(code, 0, JSON.stringify(json));
      await page.locator('#outcome').waitFor({ timeout: 15_000 });
      await shot(page, `${name}-4-outcome`);
      assert.ok((await page.textContent('#outcome')).trim().length > 0);
      await page.click('#back');
      await page.waitForURL(`${ready.bank_url}callback?**`);
      await page.locator('#denied').waitFor();
      await shot(page, `${name}-9-bank-refused`);
      assert.equal(await page.textContent('#denied'), 'Login afvist');
    });
  });
}

test('a wrong code typed in the app is refused and the login stays pending', async () => {
  await withDemo(async ({ ready, page }) => {
    await openLogin(page, ready, 'wrong-code');
    const code = await enterUserId(page, ready, 'wrong-code');
    const wrong = (code[0] === 'A' ? 'B' : 'A') + code.slice(1);
    const request = await pendingRequest(ready);
    const refused = await app(
      ready, ['approve', '--request', request.request_id, '--binding-code', wrong], { pin: true });
    assert.notEqual(refused.code, 0);
    assert.match(refused.json.error.message, /code does not match/, JSON.stringify(refused.json));
    // The page keeps waiting (several status polls later) and the request
    // is still pending on the phone.
    await page.waitForTimeout(3500);
    assert.match(page.url(), /\/oidc\/login\/[^/?]+$/);
    assert.equal(await page.locator('#outcome').count(), 0);
    // The code rotates (docs/oidc.md): the one the page shows now.
    const now = await readBindingCode(page, 'wrong-code-still');
    assert.equal((await pendingRequest(ready)).request_id, request.request_id);
    // The right code still works.
    const approved = await app(
      ready, ['approve', '--request', request.request_id, '--binding-code', now], { pin: true });
    assert.equal(approved.code, 0, JSON.stringify(approved.json));
    await expectLoggedIn(page, ready, request, 'wrong-code');
  });
});

test('an unknown user ID gets a code like a known one and nothing reaches the app', async () => {
  await withDemo(async ({ ready, page }) => {
    await openLogin(page, ready, 'unknown-user');
    await page.fill('#user-id', 'ukendt#1999x');
    await page.click('#continue');
    const code = await readBindingCode(page, 'unknown-user');
    assert.match(code, /^[A-Z2-7]{8}$/);
    await page.waitForTimeout(1500);
    const { code: exit, json } = await app(ready, ['open']);
    assert.equal(exit, 0, JSON.stringify(json));
    assert.deepEqual(json.requests, []);
    assert.equal(await page.locator('#outcome').count(), 0, 'still waiting');
  });
});

test('a login page relayed to another browser is refused with 403 and no redirect', async () => {
  await withDemo(async ({ ready, browser, page }) => {
    await openLogin(page, ready, 'relayed');
    const url = page.url();
    const other = await (await browser.newContext()).newPage();
    const answer = await other.goto(url);
    await shot(other, 'relayed-4-other-browser');
    assert.equal(answer.status(), 403);
    assert.equal(other.url(), url, 'no redirect');
    assert.equal(await other.locator('#user-id').count(), 0, 'no login form');
    assert.equal(await other.locator('#binding-code').count(), 0);
    // The person's own browser still has its login.
    await enterUserId(page, ready, 'relayed');
  });
});

test('without JavaScript the page reloads itself and lands back at the bank logged in', async () => {
  await withDemo(async ({ ready, page }) => {
    await openLogin(page, ready, 'no-js');
    const code = await enterUserId(page, ready, 'no-js');
    const request = await pendingRequest(ready);
    const { code: exit, json } = await app(
      ready, ['approve', '--request', request.request_id, '--binding-code', code], { pin: true });
    assert.equal(exit, 0, JSON.stringify(json));
    await expectLoggedIn(page, ready, request, 'no-js');
  }, { context: { javaScriptEnabled: false } });
});

test('a login nobody approves expires and the page offers to try again', async () => {
  const lifetime = 4;
  await withDemo(async ({ ready, page }) => {
    assert.equal(ready.request_lifetime_secs, lifetime);
    await openLogin(page, ready, 'expired');
    await enterUserId(page, ready, 'expired');
    await page.locator('#retry').waitFor({ timeout: (lifetime + 10) * 1000 });
    await shot(page, `expired-4-retry`);
    await page.click('#retry');
    await page.locator('#user-id').waitFor();
    await shot(page, `expired-5-step-1-again`);
  }, { serverEnv: { EID_SERVER_REQUEST_LIFETIME_SECS: String(lifetime) } });
});

test('step 1 works with the keyboard alone', async () => {
  await withDemo(async ({ ready, page }) => {
    await openLogin(page, ready, 'keyboard');
    const active = () => page.evaluate(() => document.activeElement?.id ?? '');
    // The field has the focus on arrival (autofocus).
    assert.equal(await active(), 'user-id');
    // From the top of the page, Tab reaches it too.
    await page.evaluate(() => document.activeElement?.blur());
    let focused = '';
    for (let i = 0; i < 7 && focused !== 'user-id'; i++) {
      await page.keyboard.press('Tab');
      focused = await active();
    }
    assert.equal(focused, 'user-id', 'Tab reaches the user ID field');
    await page.keyboard.type(ready.user_id);
    // A logical order: field, the login methods (one stop: the arrow keys
    // move within them), checkbox, button; and back.
    await page.keyboard.press('Tab');
    assert.equal(await active(), 'method-app', 'the app is the chosen method');
    await page.keyboard.press('Tab');
    assert.equal(await active(), 'remember');
    await page.keyboard.press('Tab');
    assert.equal(await active(), 'continue');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Shift+Tab');
    assert.equal(await active(), 'user-id');
    await page.keyboard.press('Enter');
    const code = await readBindingCode(page, 'keyboard');
    assert.match(code, /^[A-Z2-7]{8}$/);
  });
});

test('at 320 px wide no page of the login scrolls sideways', async () => {
  await withDemo(async ({ ready, page }) => {
    const fits = async (what) => {
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 320, `${what}: scrollWidth ${width} > 320`);
    };
    await openLogin(page, ready, 'narrow');
    await fits('step 1');
    const code = await enterUserId(page, ready, 'narrow');
    await fits('step 2');
    const request = await pendingRequest(ready);
    await app(ready, ['deny', '--request', request.request_id]);
    await page.locator('#outcome').waitFor({ timeout: 15_000 });
    await shot(page, 'narrow-4-outcome');
    await fits('outcome');
    assert.match(code, /^[A-Z2-7]{8}$/);
  }, { context: { viewport: { width: 320, height: 640 } } });
});

test("the demo's built-in phone shows the login and approves with the code typed into it", async () => {
  const demo = await startDemoWithPhone();
  const browser = await launchBrowser(demo.ready);
  try {
    const page = await (await browser.newContext()).newPage();
    await openLogin(page, demo.ready, 'phone-loop');
    const code = await enterUserId(page, demo.ready, 'phone-loop');
    const deadline = Date.now() + 15_000;
    while (!/a request arrived/.test(demo.output()) && Date.now() < deadline) {
      await page.waitForTimeout(200);
    }
    assert.match(demo.output(), /Danske Eksempel Bank/);
    // A mistyped code is refused and asked for again; then the right one.
    demo.answer('AAAA AAAA');
    while (!/refused/.test(demo.output()) && Date.now() < deadline) {
      await page.waitForTimeout(200);
    }
    assert.match(demo.output(), /phone: refused: .*code does not match/);
    demo.answer(await readBindingCode(page, 'phone-loop-again') || code);
    await page.waitForURL(`${demo.ready.bank_url}callback?**`, { timeout: 20_000 });
    await page.locator('#logged-in').waitFor();
    await shot(page, 'phone-loop-9-bank-logged-in');
    assert.match(demo.output(), /phone: approved/);
    assert.ok(!demo.output().includes('384726'), 'the PIN is never printed');
  } finally {
    await browser.close();
    const { code } = await demo.stop();
    assert.equal(code, 0);
  }
});

test('a person signs in to the self-service pages with the user ID and the app, and sees their identity', async () => {
  await withDemo(async ({ ready, page }) => {
    await page.goto(`${ready.broker_url}/self-service`);
    await page.locator('#user-id').waitFor();
    await shot(page, 'self-service-1-user-id');
    // The form posts back to the page's own origin: the origin check and
    // the CSRF token both pass in a real browser.
    const code = await enterUserId(page, ready, 'self-service');
    const request = await pendingRequest(ready);
    assert.equal(request.kind, 'self_service');
    const { code: exit, json } = await app(
      ready, ['approve', '--request', request.request_id, '--binding-code', code], { pin: true });
    assert.equal(exit, 0, JSON.stringify(json));
    await page.locator('#user-id-value').waitFor({ timeout: 15_000 });
    await shot(page, 'self-service-2-account');
    assert.equal((await page.textContent('#user-id-value')).trim(), ready.user_id);
    assert.ok(await page.locator('#authenticators').isVisible());
    assert.ok(await page.locator('#phone-form').isVisible(), 'a phone change can start');
  });
});
