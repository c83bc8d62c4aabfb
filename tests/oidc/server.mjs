// A real OpenID provider for Warden's tests: node `oidc-provider` on 127.0.0.1, with test
// users that have passwords and groups, a login form a plain HTTP client can post, consent
// granted without asking, and a small control API under /test/ that tests use to change the
// world behind Warden's back (groups, revoked grants, back-channel logout, key rotation).
//
//   node server.mjs --config FILE [--port N] [--exit-with-stdin]
//
// FILE (JSON; every field optional):
//   port               listen port; 0 = any (the readiness line says which)
//   accessTokenTtl     seconds, access tokens of web clients (default 300)
//   idTokenTtl         seconds (default 3600)
//   refreshTokenTtl    seconds (default 86400)
//   rotateRefreshTokens  every refresh returns a new refresh token (default true)
//   users: [{ login, password, email, name, groups: [..] }]
//   clients: [{ client_id, client_secret, redirect_uris, post_logout_redirect_uris,
//               backchannel_logout_uri? }]              authorization_code + refresh_token, PKCE S256
//   serviceClients: [{ client_id, client_secret, resource, scope?, accessTokenTtl? }]
//                                                       client_credentials; JWT (RS256) access
//                                                       tokens with aud = resource
//
// Readiness: prints `oidc-provider ready http://127.0.0.1:PORT` on stdout once discovery
// (`/.well-known/openid-configuration`) is served. Plain HTTP on loopback only: a test tool.
//
// Control API (no auth; loopback only):
//   POST /test/users/{login}/groups   body: JSON list of group names
//   POST /test/users/{login}/revoke   deletes the user's grants and tokens: refreshes fail
//   POST /test/backchannel/{login}    sends a logout token for each of the user's sessions to
//                                     each client's backchannel_logout_uri (?client_id= to pick)
//   GET  /test/sessions/{login}       the sids the provider issued for the user, per client
//   POST /test/rotate_keys            a new signing key first in the JWKS; old keys stay published
//   POST /test/sign                   body: { claims, header? } -> { jwt }: any claims, signed RS256
//                                     with the provider's current key (tokens the provider would
//                                     never issue, to test what relying parties refuse)

import { createServer } from 'node:http';
import {
  createPrivateKey, generateKeyPairSync, randomBytes, sign,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

// ---- arguments and conf -------------------------------------------------------------------

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const confPath = arg('config') ?? process.env.OIDC_TEST_CONFIG;
const conf = confPath ? JSON.parse(readFileSync(confPath, 'utf8')) : {};
const port = Number(arg('port') ?? process.env.PORT ?? conf.port ?? 0);
const accessTokenTtl = conf.accessTokenTtl ?? 300;
const idTokenTtl = conf.idTokenTtl ?? 3600;
const refreshTokenTtl = conf.refreshTokenTtl ?? 86400;
const rotateRefreshTokens = conf.rotateRefreshTokens ?? true;

const users = new Map((conf.users ?? []).map((u) => [u.login, { groups: [], ...u }]));
const serviceClients = conf.serviceClients ?? [];
const resources = new Map(serviceClients.map((c) => [c.resource, c]));

if (process.argv.includes('--exit-with-stdin')) {
  // The test harness holds our stdin: when it goes away (even killed), so do we.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}

// ---- storage shared by every provider instance (key rotation builds a new instance) --------

const store = new Map(); // `${model}:${id}` -> { payload, expiresAt }
const byUid = new Map(); // session uid -> key
const byUserCode = new Map();

function alive(key) {
  const e = store.get(key);
  if (!e) return undefined;
  if (e.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return e;
}

class Adapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (payload.uid) byUid.set(payload.uid, key);
    if (payload.userCode) byUserCode.set(payload.userCode, key);
  }

  async find(id) {
    return alive(this.key(id))?.payload;
  }

  async findByUid(uid) {
    const key = byUid.get(uid);
    return key ? alive(key)?.payload : undefined;
  }

  async findByUserCode(code) {
    const key = byUserCode.get(code);
    return key ? alive(key)?.payload : undefined;
  }

  async consume(id) {
    const e = alive(this.key(id));
    if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const prefix = `${this.model}:`;
    for (const [key, e] of store) {
      if (key.startsWith(prefix) && e.payload.grantId === grantId) store.delete(key);
    }
  }
}

// Expired entries go away even if nobody asks for them.
setInterval(() => {
  for (const key of store.keys()) alive(key);
}, 60_000).unref();

// ---- keys -----------------------------------------------------------------------------------

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
}

let signingKeys = [newSigningKey()];
const cookieKeys = [randomBytes(32).toString('hex')];

// ---- who signed in where: sids per user and client, for /test/backchannel -------------------

const sids = new Map(); // login -> Map(client_id -> Set(sid))

function rememberSid(ctx) {
  const { session, client } = ctx.oidc;
  if (!session?.accountId || !client) return;
  const sid = session.sidFor(client.clientId);
  if (!sid) return;
  if (!sids.has(session.accountId)) sids.set(session.accountId, new Map());
  const perClient = sids.get(session.accountId);
  if (!perClient.has(client.clientId)) perClient.set(client.clientId, new Set());
  perClient.get(client.clientId).add(sid);
}

// ---- the provider ---------------------------------------------------------------------------

function webClient(c) {
  const client = {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    post_logout_redirect_uris: [],
    ...c,
  };
  if (client.backchannel_logout_uri) client.backchannel_logout_session_required = true;
  return client;
}

function serviceClient(c) {
  return {
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  };
}

function claimsOf(login) {
  const u = users.get(login);
  return {
    sub: login,
    email: u.email,
    email_verified: true,
    name: u.name,
    groups: [...u.groups],
  };
}

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    adapter: Adapter,
    clients: [
      ...(conf.clients ?? []).map(webClient),
      ...serviceClients.map(serviceClient),
    ],
    jwks: { keys: signingKeys },
    cookies: { keys: cookieKeys },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    // Claims of the granted scopes go into the ID token as well as userinfo (many real IdPs
    // do this; Warden reads groups from either).
    conformIdTokenClaims: false,
    async findAccount(_ctx, sub) {
      if (!users.has(sub)) return undefined;
      return { accountId: sub, claims: async () => claimsOf(sub) };
    },
    // The provider refuses to call special-use addresses (SSRF protection); a test provider
    // talks to relying parties on loopback, so its requests go out without that dispatcher.
    fetch: (url, options) => {
      const { dispatcher: _ssrfGuard, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Web clients get opaque access tokens usable at userinfo; service clients get JWTs
        // for their resource.
        defaultResource: async (_ctx, client, oneOf) => {
          if (oneOf) return oneOf;
          return serviceClients.find((c) => c.client_id === client.clientId)?.resource;
        },
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx, resource) => {
          const rs = resources.get(resource);
          if (!rs) throw new errors.InvalidTarget();
          return {
            scope: rs.scope ?? 'api',
            audience: resource,
            accessTokenTTL: rs.accessTokenTtl ?? 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    pkce: { required: () => true },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => rotateRefreshTokens,
    // Auto-consent: a grant covering everything asked for.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      const grant = grantId
        ? await ctx.oidc.provider.Grant.find(grantId)
        : new ctx.oidc.provider.Grant({
          clientId: ctx.oidc.client.clientId,
          accountId: ctx.oidc.session.accountId,
        });
      if (!grant) return undefined;
      grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
      if (ctx.oidc.requestParamClaims.size) grant.addOIDCClaims([...ctx.oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 300,
      IdToken: () => idTokenTtl,
      RefreshToken: () => refreshTokenTtl,
      AuthorizationCode: () => 60,
      Interaction: () => 600,
      Session: () => 86400,
      Grant: () => 86400,
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><body><h1>error</h1>${Object.entries(out)
        .map(([k, v]) => `<p><b>${esc(k)}</b>: ${esc(v)}</p>`)
        .join('')}</body></html>`;
    },
  });
  provider.on('authorization.success', rememberSid);
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  provider.on('backchannel.error', (_ctx, err) => console.error('backchannel.error', err.message));
  return provider;
}

// ---- the login form -------------------------------------------------------------------------

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, error) {
  return `<!DOCTYPE html>
<html><head><title>Sign in</title></head><body>
${error ? `<p class="error" id="error">${esc(error)}</p>` : ''}
<form id="login" method="post" action="/interaction/${esc(uid)}/login">
  <input type="text" name="login" autofocus>
  <input type="password" name="password">
  <button type="submit">Sign in</button>
</form>
<form id="abort" method="post" action="/interaction/${esc(uid)}/abort">
  <button type="submit">Cancel</button>
</form>
</body></html>`;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 1 << 20) {
        reject(new Error('body too large'));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, type, body) {
  res.statusCode = status;
  res.setHeader('content-type', type);
  res.setHeader('cache-control', 'no-store');
  res.end(body);
}

function json(res, status, value) {
  send(res, status, 'application/json', JSON.stringify(value));
}

let provider;

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'text/plain', 'interaction mismatch');
  const { prompt, params } = details;

  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') return send(res, 200, 'text/html', loginPage(uid));
    // Consent is granted without asking: whatever is still missing is added to the grant.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
  }
  if (req.method === 'POST' && action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'the user cancelled the sign-in',
    }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'login') {
    const form = new URLSearchParams(await readBody(req));
    const login = form.get('login') ?? '';
    const user = users.get(login);
    if (!user || user.password !== form.get('password')) {
      return send(res, 401, 'text/html', loginPage(uid, 'Invalid login or password.'));
    }
    if (params.client_id === undefined) return send(res, 400, 'text/plain', 'no client');
    return provider.interactionFinished(req, res, { login: { accountId: login } }, {
      mergeWithLastSubmission: false,
    });
  }
  return send(res, 405, 'text/plain', 'method not allowed');
}

// ---- the control API ------------------------------------------------------------------------

async function control(req, res, path) {
  let m;
  if (req.method === 'POST' && (m = path.match(/^\/test\/users\/([^/]+)\/groups$/))) {
    const login = decodeURIComponent(m[1]);
    const user = users.get(login);
    if (!user) return json(res, 404, { error: 'no such user' });
    const groups = JSON.parse(await readBody(req));
    if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string')) {
      return json(res, 400, { error: 'expected a JSON list of strings' });
    }
    user.groups = groups;
    return json(res, 200, { login, groups });
  }
  if (req.method === 'POST' && (m = path.match(/^\/test\/users\/([^/]+)\/revoke$/))) {
    const login = decodeURIComponent(m[1]);
    let revoked = 0;
    for (const [key, e] of store) {
      const model = key.slice(0, key.indexOf(':'));
      if (['Grant', 'RefreshToken', 'AccessToken', 'AuthorizationCode'].includes(model)
        && e.payload.accountId === login) {
        store.delete(key);
        revoked += 1;
      }
    }
    return json(res, 200, { login, revoked });
  }
  if (req.method === 'GET' && (m = path.match(/^\/test\/sessions\/([^/]+)$/))) {
    const perClient = sids.get(decodeURIComponent(m[1])) ?? new Map();
    return json(res, 200, Object.fromEntries([...perClient].map(([c, s]) => [c, [...s]])));
  }
  if (req.method === 'POST' && (m = path.match(/^\/test\/backchannel\/([^/]+)$/))) {
    const login = decodeURIComponent(m[1]);
    const only = new URL(req.url, 'http://x').searchParams.get('client_id');
    const delivered = [];
    const failed = [];
    for (const [clientId, set] of sids.get(login) ?? new Map()) {
      if (only && only !== clientId) continue;
      const client = await provider.Client.find(clientId);
      if (!client?.backchannelLogoutUri) continue;
      for (const sid of set) {
        try {
          await client.backchannelLogout(login, sid);
          delivered.push({ client_id: clientId, sid });
        } catch (err) {
          failed.push({ client_id: clientId, sid, error: err.message });
        }
      }
    }
    return json(res, failed.length ? 502 : 200, { delivered, failed });
  }
  if (req.method === 'POST' && path === '/test/sign') {
    const { claims, header } = JSON.parse(await readBody(req));
    const [key] = signingKeys;
    const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const input = `${b64({ alg: 'RS256', kid: key.kid, ...header })}.${b64(claims)}`;
    const signature = sign('sha256', Buffer.from(input), createPrivateKey({ key, format: 'jwk' }));
    return json(res, 200, { jwt: `${input}.${signature.toString('base64url')}` });
  }
  if (req.method === 'POST' && path === '/test/rotate_keys') {
    signingKeys = [newSigningKey(), ...signingKeys];
    provider = buildProvider(provider.issuer);
    return json(res, 200, { kids: signingKeys.map((k) => k.kid) });
  }
  return json(res, 404, { error: 'no such test endpoint' });
}

// ---- serving --------------------------------------------------------------------------------

const server = createServer(async (req, res) => {
  try {
    if (!provider) return send(res, 503, 'text/plain', 'starting');
    const path = new URL(req.url, 'http://x').pathname;
    if (path.startsWith('/test/')) return await control(req, res, path);
    const m = path.match(/^\/interaction\/([^/]+)(?:\/(login|abort))?$/);
    if (m) return await interaction(req, res, m[1], m[2]);
    return provider.callback()(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) send(res, 500, 'text/plain', String(err?.message ?? err));
    else res.end();
  }
});

server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  provider = buildProvider(issuer);
  console.log(`oidc-provider ready ${issuer}`);
});
