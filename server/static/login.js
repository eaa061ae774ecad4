// The login page's live part: asks the server every second how the login
// stands, shows the current code, QR and time left, and moves on when the
// person has answered in the app. Without JavaScript the page reloads itself
// (a meta refresh in <noscript>) and shows the same.
"use strict";
(function () {
  const root = document.getElementById("login");
  if (!root) return;
  const statusUrl = root.dataset.status;
  const qrUrl = root.dataset.qr;
  const code = document.getElementById("binding-code");
  const qr = document.getElementById("qr");
  const countdown = document.getElementById("countdown");
  const status = document.getElementById("status");
  let lastStep = null;
  async function tick() {
    try {
      const answer = await fetch(statusUrl, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      if (answer.ok) {
        const s = await answer.json();
        if (s.next) {
          status.textContent = s.message;
          window.location.assign(s.next);
          return;
        }
        if (code.textContent !== s.code) code.textContent = s.code;
        if (s.step !== lastStep) {
          qr.src = qrUrl + "?s=" + s.step;
          lastStep = s.step;
        }
        countdown.textContent = s.countdown;
        // Only a change is written, so screen readers announce only news.
        if (status.textContent !== s.message) status.textContent = s.message;
      }
    } catch (e) {
      // A lost answer: the next tick asks again.
    }
    setTimeout(tick, 1000);
  }
  setTimeout(tick, 1000);
})();
