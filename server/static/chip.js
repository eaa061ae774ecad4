// The chip's WebAuthn ceremony on the self-service and login pages. The
// server puts the `publicKey` options (binary fields base64url) into the
// form's data-options; this script asks the browser for the chip, puts the
// answer (binary fields base64url) into the hidden "credential" field and
// posts the form. No inline script: the pages' CSP allows only this file.
"use strict";
(function () {
  function fromB64url(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }
  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creationOptions(o) {
    o.challenge = fromB64url(o.challenge);
    o.user.id = fromB64url(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = fromB64url(c.id); });
    return o;
  }
  function requestOptions(o) {
    o.challenge = fromB64url(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = fromB64url(c.id); });
    return o;
  }
  function encode(cred) {
    var r = cred.response;
    var response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
    }
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: response,
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    });
  }
  var form = document.getElementById("chip-form");
  if (!form || !window.PublicKeyCredential) { return; }
  var field = document.getElementById("chip-credential");
  var sent = false;
  form.addEventListener("submit", function (event) {
    if (sent) { return; }
    event.preventDefault();
    var options = JSON.parse(form.getAttribute("data-options"));
    var ask = form.getAttribute("data-ceremony") === "create"
      ? navigator.credentials.create({ publicKey: creationOptions(options) })
      : navigator.credentials.get({ publicKey: requestOptions(options) });
    ask.then(function (cred) {
      field.value = encode(cred);
      sent = true;
      form.submit();
    }, function () {
      // Cancelled or timed out: post without an answer; the page says so
      // and offers a fresh challenge.
      sent = true;
      form.submit();
    });
  });
})();
