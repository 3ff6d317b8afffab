// Tenet sign-in: the WebAuthn ceremony in the browser. The server sends the options as
// webauthn-rs JSON (binary fields base64url); the response goes back in the same form.
"use strict";
(function () {
  const b64u = {
    decode(text) {
      const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
      const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
      return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
    },
    encode(buffer) {
      const bytes = new Uint8Array(buffer);
      let bin = "";
      for (const b of bytes) bin += String.fromCharCode(b);
      return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
  };
  const status = (text) => { document.getElementById("status").textContent = text; };
  const base = "/.tenet/auth/webauthn/";

  async function post(path, body) {
    const res = await fetch(base + path + window.location.search, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.detail || data.error || ("HTTP " + res.status));
    return data;
  }

  async function register() {
    const options = await post("register/begin", {});
    const pk = options.publicKey;
    pk.challenge = b64u.decode(pk.challenge);
    pk.user.id = b64u.decode(pk.user.id);
    (pk.excludeCredentials || []).forEach((c) => { c.id = b64u.decode(c.id); });
    const cred = await navigator.credentials.create({ publicKey: pk });
    return post("register/finish", {
      id: cred.id,
      rawId: b64u.encode(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: b64u.encode(cred.response.attestationObject),
        clientDataJSON: b64u.encode(cred.response.clientDataJSON),
      },
      extensions: cred.getClientExtensionResults(),
    });
  }

  async function authenticate() {
    const options = await post("authenticate/begin", {});
    const pk = options.publicKey;
    pk.challenge = b64u.decode(pk.challenge);
    (pk.allowCredentials || []).forEach((c) => { c.id = b64u.decode(c.id); });
    const cred = await navigator.credentials.get({ publicKey: pk });
    const r = cred.response;
    return post("authenticate/finish", {
      id: cred.id,
      rawId: b64u.encode(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: b64u.encode(r.authenticatorData),
        clientDataJSON: b64u.encode(r.clientDataJSON),
        signature: b64u.encode(r.signature),
        userHandle: r.userHandle ? b64u.encode(r.userHandle) : null,
      },
      extensions: cred.getClientExtensionResults(),
    });
  }

  document.getElementById("go").addEventListener("click", async () => {
    status("Waiting for your authenticator...");
    try {
      const mode = document.body.dataset.mode;
      const done = mode === "register" ? await register() : await authenticate();
      status("Verified.");
      window.location.assign(done.redirect || "/");
    } catch (e) {
      status("Not verified: " + e.message);
    }
  });
})();
