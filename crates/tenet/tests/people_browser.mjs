// A real browser (Chromium through playwright-core) signing in on a people route of Tenet's
// gateway: the provider's sign-in, passkey registration with a virtual authenticator, sign-out,
// sign-in again with the passkey, and a request refused once the device's posture turns bad.
//
// Usage: node people_browser.mjs SETTINGS_JSON
//   SETTINGS_JSON: {"playwright": dir of playwright-core, "chromium": executable,
//     "host": gateway host name, "origin": "https://HOST:PORT", "cert": device chain PEM file,
//     "key": device key PEM file, "bad_report": file holding a signed posture report (JWS)}
//   env NODE_EXTRA_CA_CERTS: Tenet's trust bundle (see "Trust" below).
// Prints one line "RESULT <json>" with what it saw; exits non-zero with a message on failure.
//
// Trust: Playwright gives a browser its client certificate through a proxy in this process,
// which opens the TLS connection to the gateway itself and verifies it against Node's roots
// plus NODE_EXTRA_CA_CERTS (the Tenet bundle); the browser's own leg to that proxy is
// unverified by Playwright's design. Name resolution: the browser maps the gateway host to
// 127.0.0.1 (--host-resolver-rules), and so does this process, where the proxy connects.

import dns from 'node:dns';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const settings = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const fail = (message) => {
  console.error(`people_browser: ${message}`);
  process.exit(1);
};
const check = (ok, message) => {
  if (!ok) fail(message);
};

// The gateway's host name resolves to loopback in this process too.
const systemLookup = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  if (hostname !== settings.host) return systemLookup.call(dns, hostname, options, callback);
  const cb = typeof options === 'function' ? options : callback;
  const all = typeof options === 'object' && options !== null && options.all;
  process.nextTick(() => (all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)));
  return {};
};
// Playwright's proxy resolves with dns.promises, one address family at a time.
const systemPromisesLookup = dns.promises.lookup;
dns.promises.lookup = async function lookup(hostname, options) {
  if (hostname !== settings.host) return systemPromisesLookup.call(dns.promises, hostname, options);
  const family = typeof options === 'object' && options !== null ? options.family : options;
  const found = family === 6 ? [] : [{ address: '127.0.0.1', family: 4 }];
  return typeof options === 'object' && options !== null && options.all ? found : found[0];
};

const entry = pathToFileURL(path.join(settings.playwright, 'index.mjs')).href;
const { chromium } = await import(entry);

const origin = settings.origin;
const navigations = [];

async function virtualAuthenticator(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

// Press the page's button and wait for the browser to reach `rd` on the gateway.
async function passkeyCeremony(page, mode) {
  await page.waitForSelector('#go');
  const shown = await page.getAttribute('body', 'data-mode');
  check(shown === mode, `the second-factor page offers ${shown}, expected ${mode} (${page.url()})`);
  await page.click('#go');
  try {
    await page.waitForURL(`${origin}/`, { timeout: 20000 });
  } catch {
    const status = await page.textContent('#status').catch(() => '(no status)');
    fail(`${mode}: the browser stayed at ${page.url()}; the page says ${JSON.stringify(status)}`);
  }
}

// The echo upstream's JSON as the browser shows it.
async function upstreamEcho(page) {
  const text = await page.textContent('body');
  try {
    return JSON.parse(text);
  } catch {
    return fail(`the page at ${page.url()} is not the upstream's echo: ${text.slice(0, 300)}`);
  }
}

async function signInFromScratch(page) {
  await page.goto(`${origin}/`, { waitUntil: 'load' });
  check(
    page.url().startsWith(`${origin}/.tenet/auth/mfa?rd=`),
    `after the provider the browser is at ${page.url()}, not the second-factor page`,
  );
}

async function pageFetch(page, url, init) {
  return page.evaluate(async ([u, i]) => {
    const r = await fetch(u, i);
    return { status: r.status, body: await r.text() };
  }, [url, init]);
}

const browser = await chromium.launch({
  executablePath: settings.chromium,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--host-resolver-rules=MAP ${settings.host} 127.0.0.1`,
  ],
});
const result = {};
try {
  const context = await browser.newContext({
    clientCertificates: [{ origin, certPath: settings.cert, keyPath: settings.key }],
  });
  const page = await context.newPage();
  page.on('response', (r) => {
    if (r.request().isNavigationRequest()) navigations.push({ url: r.url(), status: r.status() });
  });
  const { cdp, authenticatorId } = await virtualAuthenticator(context, page);

  // 1. Unauthenticated → gateway sign-in → provider → passkey registration → the upstream.
  await signInFromScratch(page);
  await passkeyCeremony(page, 'register');
  result.first = await upstreamEcho(page);
  result.navigations = navigations.slice();
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  result.credentials = credentials.length;

  // 2. Sign out from the page, sign in again: the authenticate ceremony with that passkey.
  result.logout = await pageFetch(page, '/.tenet/auth/logout', { method: 'POST' });
  const after = await context.request.get(`${origin}/`, {
    maxRedirects: 0, headers: { accept: 'text/html' },
  });
  result.after_logout = { status: after.status(), location: after.headers().location ?? null };
  await signInFromScratch(page);
  await passkeyCeremony(page, 'authenticate');
  result.second = await upstreamEcho(page);

  // 4. The device's posture turns bad: the next request is refused or sent to sign in again.
  const before = await context.request.get(`${origin}/`, { maxRedirects: 0 });
  result.before_bad_posture = before.status();
  const report = await context.request.post(`${origin}/.tenet/auth/device/report`, {
    data: fs.readFileSync(settings.bad_report, 'utf8'),
    headers: { 'content-type': 'application/jose' },
  });
  result.bad_report = { status: report.status(), body: await report.text() };
  const refused = await context.request.get(`${origin}/`, {
    maxRedirects: 0, headers: { accept: 'text/html' },
  });
  result.after_bad_posture = {
    status: refused.status(),
    location: refused.headers().location ?? null,
    body: (await refused.text()).slice(0, 500),
  };
  await context.close();
} catch (error) {
  fail(`${error.stack || error}\nnavigations: ${JSON.stringify(navigations)}`);
} finally {
  await browser.close();
}
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
