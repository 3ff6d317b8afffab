// A real OpenID provider (panva's oidc-provider) for tenet-oidc's integration tests.
//
// Usage: node oidc_provider.mjs CERT_PEM KEY_PEM REDIRECT_URI MODULE_DIR
//   env TEST_CLIENT_SECRET: the secret of the one client, "tenet-gateway".
// Listens on 127.0.0.1 over HTTPS, on port TEST_PORT when set (env) or an ephemeral one,
// and prints "PORT <n>" on stdout.
// Test-only routes:
//   /interaction/<uid>       signs in user-A and grants the requested scopes, without a page
//   POST /test-admin/rotate  replaces the signing key with a fresh one under a new kid; with
//                            `?keep=1` the previous key stays published (after the new one,
//                            which signs) until the next rotation
//   GET /test-admin/jwks-requests  how many requests the JWKS endpoint (/jwks) has had
//   POST /test-admin/jwks-hold     JWKS requests from now on wait (counted on arrival) ...
//   POST /test-admin/jwks-release  ... until this answers them all
// Resource servers (RFC 8707 `resource=`), each issuing RS256 JWT access tokens (`at+jwt`)
// with scope "api" and the audience in RESOURCE_SERVERS below; an authorization request
// without `resource` is unaffected.
// Exits when stdin closes, so it never outlives the test that started it.

import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [certFile, keyFile, redirectUri, moduleDir] = process.argv.slice(2);
if (!moduleDir || !process.env.TEST_CLIENT_SECRET) {
  console.error('usage: node oidc_provider.mjs CERT KEY REDIRECT_URI MODULE_DIR (TEST_CLIENT_SECRET set)');
  process.exit(2);
}
const entry = pathToFileURL(path.join(moduleDir, 'lib', 'index.js')).href;
const { default: Provider, errors } = await import(entry);

const ACCOUNTS = {
  'user-A': {
    email: 'alice@example.test',
    email_verified: true,
    name: 'Alice Example',
    groups: ['engineering', 'oncall'],
  },
};

const client = {
  client_id: 'tenet-gateway',
  client_secret: process.env.TEST_CLIENT_SECRET,
  redirect_uris: [redirectUri],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};

// Resource indicator -> audience of its access tokens. `audiences`, when set, replaces `aud`
// with that array (through the provider's documented JWT customizer hook).
const RESOURCE_SERVERS = {
  'https://tenet-proxy.example.test': { audience: 'tenet-proxy' },
  'https://billing.example.test': { audience: 'billing-svc' },
  'https://tenet-proxy-upper.example.test': { audience: 'Tenet-Proxy' },
  'https://shared.example.test': {
    audience: 'billing-svc',
    audiences: ['billing-svc', 'tenet-proxy'],
  },
};

async function getResourceServerInfo(ctx, indicator) {
  const server = RESOURCE_SERVERS[indicator];
  if (!server) throw new errors.InvalidTarget();
  return {
    scope: 'api',
    audience: server.audience,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

async function customizeJwt(ctx, token, jwt) {
  const server = RESOURCE_SERVERS[token.resourceServer?.identifier()];
  if (server?.audiences) jwt.payload.aud = server.audiences;
}

const cookieKeys = [crypto.randomBytes(32).toString('hex')];
let generation = 0;
let currentKey;
let jwksRequests = 0;
// While JWKS requests are held: the resolvers of those waiting.
let jwksHeld = null;
let issuer;
let provider;
let providerCallback;

function signingKey(kid) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

async function findAccount(ctx, id) {
  const account = ACCOUNTS[id];
  if (!account) return undefined;
  return { accountId: id, claims: async () => ({ sub: id, ...account }) };
}

// A new provider instance with a new key (the previous one still published when `keep`);
// storage (the memory adapter) is process-wide.
function rotate(keep) {
  generation += 1;
  const kid = `k${generation}`;
  const previous = currentKey;
  currentKey = signingKey(kid);
  // The first key of an algorithm is the one the provider signs with.
  const keys = keep && previous ? [currentKey, previous] : [currentKey];
  provider = new Provider(issuer, {
    clients: [client],
    jwks: { keys },
    findAccount,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,
    cookies: { keys: cookieKeys },
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: { enabled: true, getResourceServerInfo },
    },
    formats: { customizers: { jwt: customizeJwt } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
  });
  providerCallback = provider.callback();
  return kid;
}

async function interact(req, res) {
  const interaction = await provider.interactionDetails(req, res);
  const { prompt: { name, details }, params, session } = interaction;
  let result;
  if (name === 'login') {
    result = { login: { accountId: 'user-A' } };
  } else if (name === 'consent') {
    const grant = interaction.grantId
      ? await provider.Grant.find(interaction.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: 'access_denied', error_description: `unexpected prompt ${name}` };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

async function handle(req, res) {
  try {
    const { pathname, searchParams } = new URL(req.url, issuer);
    if (pathname.startsWith('/interaction/')) {
      await interact(req, res);
    } else if (pathname === '/test-admin/rotate' && req.method === 'POST') {
      const kid = rotate(searchParams.get('keep') === '1');
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ kid }));
    } else if (pathname === '/test-admin/jwks-requests' && req.method === 'GET') {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ count: jwksRequests }));
    } else if (pathname === '/test-admin/jwks-hold' && req.method === 'POST') {
      jwksHeld = jwksHeld ?? [];
      res.end('{}');
    } else if (pathname === '/test-admin/jwks-release' && req.method === 'POST') {
      const waiting = jwksHeld ?? [];
      jwksHeld = null;
      for (const resume of waiting) resume();
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ released: waiting.length }));
    } else {
      if (pathname === '/jwks') {
        jwksRequests += 1;
        if (jwksHeld) await new Promise((resume) => jwksHeld.push(resume));
      }
      providerCallback(req, res);
    }
  } catch (error) {
    res.statusCode = 500;
    res.end(String(error));
  }
}

const server = https.createServer(
  { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) },
  handle,
);
server.listen(Number(process.env.TEST_PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `https://127.0.0.1:${port}`;
  rotate(false);
  process.stdout.write(`PORT ${port}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
