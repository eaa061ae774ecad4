// The chip in a real browser: Debian's Chromium with a virtual security key
// (DevTools `WebAuthn.addVirtualAuthenticator` through playwright-core's CDP
// session) registers a chip on the self-service pages with its access code
// and, after the waiting period (0 s on this demo), confirms it with the
// chip, then logs in at the demo bank at level High with the chip and its
// access code. The broker is used as `localhost` (the bank's issuer too): a
// WebAuthn relying party must be a domain, never an IP address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { app, enterUserId, launchBrowser, pendingRequest, shot, startDemo } from '../lib.mjs';

const ACCESS_CODE = 'violet-harbour-42';
const HIGH = 'https://data.gov.dk/concept/core/nsis/loa/High';

test('a chip is registered on the self-service pages with a virtual security key, confirmed with it, and logs in at the bank at level High', async () => {
  const demo = await startDemo({ EID_SERVER_CHIP_WAIT_SECS: '0' });
  const { ready } = demo;
  const browser = await launchBrowser(ready);
  try {
    const ctx = await browser.newContext();
    ctx.setDefaultTimeout(10_000);
    const page = await ctx.newPage();
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'usb',
        hasResidentKey: false,
        hasUserVerification: false,
        isUserConsenting: true,
        automaticPresenceSimulation: true,
      },
    });
    const broker = ready.issuer;
    assert.match(broker, /^https:\/\/localhost:\d+$/);

    // Sign in with the user ID and the app.
    await page.goto(`${broker}/self-service`);
    const code = await enterUserId(page, ready, 'chip');
    const request = await pendingRequest(ready);
    const signedIn = await app(
      ready, ['approve', '--request', request.request_id, '--binding-code', code], { pin: true });
    assert.equal(signedIn.code, 0, JSON.stringify(signedIn.json));
    await page.locator('#chip-link').waitFor({ timeout: 15_000 });

    // Step 1: the chip and its access code.
    await page.click('#chip-link');
    await page.locator('#chip-form').waitFor();
    await shot(page, 'chip-1-register');
    await page.fill('#access-code', ACCESS_CODE);
    await page.fill('#access-code-again', ACCESS_CODE);
    await page.click('#chip-submit');
    await page.waitForURL(/\/self-service\/chip\?done=registered$/);
    await shot(page, 'chip-2-registered');
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1, 'the key holds one credential for the broker');
    assert.equal(credentials[0].rpId, 'localhost');

    // Step 2 (the wait is 0 s here): confirm with the chip.
    await page.locator('#chip-form[data-ceremony="get"]').waitFor();
    await page.fill('#access-code', ACCESS_CODE);
    await page.click('#chip-submit');
    await page.waitForURL(/\/self-service\/chip\?done=activated$/);
    await page.locator('#chip-active').waitFor();
    await shot(page, 'chip-3-active');
    const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.ok(after.credentials[0].signCount >= 1, 'the key signed once more');

    // At the bank: "Log på med chip (niveau Høj)" asks for NSIS High; the
    // login page offers the chip; a wrong access code is refused, then the
    // chip and the right one log in.
    await page.goto(ready.bank_url);
    await page.click('#login-high');
    await page.waitForURL(/^https:\/\/localhost:\d+\/oidc\/login\/[^/?]+$/);
    assert.equal(await page.locator('#method-code_display').count(), 0, 'a code display does not reach High');
    await page.check('#method-chip');
    await page.fill('#user-id', ready.user_id);
    await shot(page, 'chip-4-login-high');
    await page.click('#continue');
    await page.waitForURL(/\/oidc\/login\/[^/]+\/chip$/);
    await page.locator('#chip-form[data-ceremony="get"]').waitFor();
    await page.fill('#access-code', 'not-the-access-code');
    await page.click('#chip-submit');
    await page.locator('#message').waitFor();
    await shot(page, 'chip-5-wrong-access-code');
    await page.fill('#access-code', ACCESS_CODE);
    await page.click('#chip-submit');
    await page.waitForURL(`${ready.bank_url}callback?**`, { timeout: 15_000 });
    await page.locator('#logged-in').waitFor();
    await shot(page, 'chip-6-bank-logged-in-high');
    assert.equal(await page.textContent('#acr'), HIGH);
    assert.equal(await page.textContent('#amr'), 'chip hwk pwd');
    assert.match(await page.textContent('#request-id'), /^receipt [0-9a-f]{64}$/);
  } finally {
    await browser.close();
    const { code } = await demo.stop();
    assert.equal(code, 0, 'eid demo --web stops cleanly on Ctrl-C');
  }
});
