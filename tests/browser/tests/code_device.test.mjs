// The hosted login page with a code display (docs/authenticators.md): the
// demo person's code display (a one-device PSKC batch `eid demo --web`
// made and activated) is played by `eid token code`; the person picks
// "Kodeviser", types the six digits and the access code, and lands at the
// bank logged in with amr code_token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { EID, launchBrowser, openLogin, shot, startDemo } from '../lib.mjs';

const SUBSTANTIAL = 'https://data.gov.dk/concept/core/nsis/loa/Substantial';

/** `eid token code` for the demo's code display: its code now and when it changes. */
function tokenCode(ready) {
  const device = ready.code_device;
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
async function freshCode(ready) {
  const now = await tokenCode(ready);
  await new Promise((r) => setTimeout(r, Math.max(0, now.next_code_at_ms - Date.now()) + 300));
  return (await tokenCode(ready)).code;
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
