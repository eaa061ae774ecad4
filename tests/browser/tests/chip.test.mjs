// The chip in a real browser: Debian's Chromium with a virtual security key
// (DevTools `WebAuthn.addVirtualAuthenticator` through playwright-core's CDP
// session) registers a chip on the self-service pages with its access code
// and, after the waiting period (0 s on this demo), confirms it with the
// chip. The pages are opened as `localhost`: a WebAuthn relying party must
// be a domain, never an IP address. The login at level High with the chip
// is tested over HTTP with a software chip (server/tests/self_service_pages.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { app, enterUserId, launchBrowser, pendingRequest, shot, startDemo } from '../lib.mjs';

const ACCESS_CODE = 'violet-harbour-42';

test('a chip is registered on the self-service pages with a virtual security key and confirmed with it', async () => {
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
    const broker = ready.broker_url.replace('127.0.0.1', 'localhost');

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
  } finally {
    await browser.close();
    const { code } = await demo.stop();
    assert.equal(code, 0, 'eid demo --web stops cleanly on Ctrl-C');
  }
});
