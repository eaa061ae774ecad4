// The hosted login page with a code display and an audio code reader
// (docs/authenticators.md): the demo person's code display (a one-device
// PSKC batch `eid demo --web` made and activated) is played by `eid token
// code`; the person picks "Kodeviser", types the six digits and the access
// code, and lands at the bank logged in with amr code_token. The demo's
// spare audio code reader is taken into use on the self-service page by an
// approval in the app that types the page's binding code, then logs in at
// the bank with amr code_reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { EID, app, launchBrowser, openLogin, pendingRequest, shot, startDemo } from '../lib.mjs';

const SUBSTANTIAL = 'https://data.gov.dk/concept/core/nsis/loa/Substantial';

/** `eid token code` for one of the demo's devices: its code now and when it changes. */
function tokenCode(ready, device = ready.code_device) {
  const env = { ...process.env, EID_PSKC_KEY_FILE: device.pre_shared_key_file };
  delete env.EID_PSKC_KEY;
  return new Promise((ok, fail) => {
    execFile(
      EID,
      ['--json', 'token', 'code', '--serial', device.serial, '--pskc', device.pskc_file],
      { env },
      (err, stdout, stderr) => {
        if (err) fail(new Error(`eid token code: ${stdout} ${stderr}`));
        else ok(JSON.parse(stdout.trim()));
      },
    );
  });
}

/** A code whose step the activation did not use: the next one. */
async function freshCode(ready, device = ready.code_device) {
  const now = await tokenCode(ready, device);
  await new Promise((r) => setTimeout(r, Math.max(0, now.next_code_at_ms - Date.now()) + 300));
  return (await tokenCode(ready, device)).code;
}

test('a person logs in at the bank with the code display and its access code', async () => {
  const demo = await startDemo();
  const browser = await launchBrowser(demo.ready);
  const ready = demo.ready;
  try {
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(10_000);
    await openLogin(page, ready, 'code-display');
    await page.check('#method-code_display');
    await page.fill('#user-id', ready.user_id);
    await page.click('#continue');
    await page.waitForURL(/\/oidc\/login\/[^/]+\/code$/);
    await shot(page, 'code-display-3-code');
    // A wrong code: the same page with one message.
    await page.fill('#code', '000000');
    await page.click('#continue');
    await page.locator('#code-error').waitFor();
    const code = await freshCode(ready);
    await page.fill('#code', code);
    await page.click('#continue');
    await page.waitForURL(/\/access-code$/);
    await shot(page, 'code-display-4-access-code');
    await page.fill('#access-code', ready.code_device.access_code);
    await page.click('#continue');
    await page.waitForURL(`${ready.bank_url}callback?**`, { timeout: 15_000 });
    await page.locator('#logged-in').waitFor();
    await shot(page, 'code-display-9-bank-logged-in');
    assert.equal(await page.textContent('#acr'), SUBSTANTIAL);
    assert.equal(await page.textContent('#amr'), 'code_token otp pwd');
    assert.match(await page.textContent('#request-id'), /^receipt [0-9a-f]{64}$/);
  } finally {
    await browser.close();
    const { code } = await demo.stop();
    assert.equal(code, 0, 'eid demo --web stops cleanly on Ctrl-C');
  }
});

test('an audio code reader is taken into use on the web by an approval in the app, then logs in at the bank', async () => {
  const demo = await startDemo();
  const browser = await launchBrowser(demo.ready);
  const ready = demo.ready;
  const reader = ready.code_reader;
  const ACCESS = 'quiet-meadow-58';
  try {
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(10_000);
    // From the support-code page to the app's way.
    await page.goto(`${ready.issuer}/self-service/code-device`);
    await page.click('#by-app-link');
    await page.locator('#by-app-form').waitFor();
    const first = await tokenCode(ready, reader);
    const second = await freshCode(ready, reader);
    await page.fill('#user-id', ready.user_id);
    await page.fill('#serial', reader.serial);
    await page.fill('#first-code', first.code);
    await page.fill('#second-code', second);
    await page.fill('#access-code', ACCESS);
    await page.fill('#access-code-again', ACCESS);
    await shot(page, 'code-reader-1-by-app');
    await page.click('#by-app');
    const shown = page.locator('#binding-code');
    await shown.waitFor();
    await shot(page, 'code-reader-2-code');
    const code = (await shown.textContent()).replace(/\s+/g, '');
    const request = await pendingRequest(ready);
    // The app refuses a code that is not the page's, then approves with it.
    const wrong = await app(
      ready, ['approve', '--request', request.request_id, '--binding-code', 'AAAAAAAA'], { pin: true });
    assert.notEqual(wrong.code, 0, JSON.stringify(wrong.json));
    const approved = await app(
      ready, ['approve', '--request', request.request_id, '--binding-code', code], { pin: true });
    assert.equal(approved.code, 0, JSON.stringify(approved.json));
    await page.locator('#outcome').waitFor({ timeout: 15_000 });
    await shot(page, 'code-reader-3-activated');

    // At the bank with the audio code reader (it replaced the code display).
    await openLogin(page, ready, 'code-reader');
    await page.check('#method-code_reader');
    await page.fill('#user-id', ready.user_id);
    await page.click('#continue');
    await page.waitForURL(/\/oidc\/login\/[^/]+\/code$/);
    await page.fill('#code', await freshCode(ready, reader));
    await page.click('#continue');
    await page.waitForURL(/\/access-code$/);
    await page.fill('#access-code', ACCESS);
    await page.click('#continue');
    await page.waitForURL(`${ready.bank_url}callback?**`, { timeout: 15_000 });
    await page.locator('#logged-in').waitFor();
    await shot(page, 'code-reader-9-bank-logged-in');
    assert.equal(await page.textContent('#acr'), SUBSTANTIAL);
    assert.equal(await page.textContent('#amr'), 'code_reader otp pwd');
  } finally {
    await browser.close();
    const { code } = await demo.stop();
    assert.equal(code, 0, 'eid demo --web stops cleanly on Ctrl-C');
  }
});
