// The token API seen from the page: every call sends the access token and
// the page's language, and turns any failure into an ApiError whose message
// is the API's own (localised by Accept-Language) or, for API Gateway's
// and the network's failures, the page's.

import { acceptLanguage, t } from './i18n.js';

const TOKEN_KEY = 'console.accessToken';

/** ApiError is a failed call: HTTP status (0: network), code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }

  /** auth reports whether the access token was refused (sign in again). */
  get auth() {
    return this.status === 401 || this.status === 403;
  }
}

/** accessToken is the signed-in user's access token, or ''. */
export function accessToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

/** setAccessToken keeps the access token in this tab's sessionStorage ('' removes it). */
export function setAccessToken(tok) {
  try {
    if (tok) sessionStorage.setItem(TOKEN_KEY, tok);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage off: nothing is kept.
  }
}

async function call(method, path, { query, body, token } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  }
  const headers = {
    Accept: 'application/json',
    'Accept-Language': acceptLanguage(),
    Authorization: `Bearer ${token ?? accessToken()}`,
  };
  const init = { method, headers, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch {
    throw new ApiError(0, 'network', t('network_error'));
  }
  let env = null;
  try {
    env = await resp.json();
  } catch {
    // Not JSON: handled below.
  }
  if (resp.status === 401 || resp.status === 403) {
    // API Gateway's own answer ({"message":"Unauthorized"}): the page's words.
    throw new ApiError(resp.status, 'unauthorized', t('session_invalid'));
  }
  if (env && typeof env.success === 'boolean') {
    if (env.success && resp.ok) return env.data;
    throw new ApiError(resp.status, env.code || 'error', env.message || t('server_error', { status: resp.status }));
  }
  throw new ApiError(resp.status, 'gateway', (env && env.message) || t('server_error', { status: resp.status }));
}

/** listTokens: GET /api/token?p&size -> {items, total, page, page_size}. */
export const listTokens = (page, size, token) => call('GET', '/api/token', { query: { p: page, size }, token });

/** searchTokens: GET /api/token/search?keyword&token -> tokens. */
export const searchTokens = (keyword, key) => call('GET', '/api/token/search', { query: { keyword, token: key } });

/** createToken: POST /api/token -> a token or an array of tokens, with full keys. */
export const createToken = (spec) => call('POST', '/api/token', { body: spec });

/** updateToken: PUT /api/token (a partial update) -> the token. */
export const updateToken = (patch) => call('PUT', '/api/token', { body: patch });

/** setStatus: PUT /api/token?status_only=true -> the token. */
export const setStatus = (id, status) => call('PUT', '/api/token', { query: { status_only: 'true' }, body: { id, status } });

/** deleteToken: DELETE /api/token/{id}. */
export const deleteToken = (id) => call('DELETE', `/api/token/${encodeURIComponent(id)}`);

/** deleteTokens: POST /api/token/batch -> how many were deleted. */
export const deleteTokens = (ids) => call('POST', '/api/token/batch', { body: { ids } });

/** revealKey: POST /api/token/{id}/key -> the full key. */
export const revealKey = async (id) => (await call('POST', `/api/token/${encodeURIComponent(id)}/key`)).key;

/** revealKeys: POST /api/token/batch/keys -> {id: key}. */
export const revealKeys = async (ids) => (await call('POST', '/api/token/batch/keys', { body: { ids } })).keys || {};
