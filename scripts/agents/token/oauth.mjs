// @ts-check
/** claude-token-renew: Anthropic's OAuth token endpoint and profile (identity) endpoint. */
import { errMsg, remember } from './core.mjs';
import { httpJson } from './vault.mjs';

/** @typedef {import('./config.mjs').Config} Config @typedef {import('./files.mjs').OAuth} OAuth */

// ---------------------------------------------------------------------------------------
// Anthropic OAuth + profile

/**
 * @param {Config} cfg @param {string} refreshToken @param {() => number} clock
 * @returns {Promise<{ok: true, oauth: Partial<OAuth>} | {ok: false, kind: 'invalid_grant'|'transient'|'rejected', detail: string, retryAfterMs?: number}>}
 */
export async function oauthRefresh(cfg, refreshToken, clock) {
  const fields = { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: cfg.clientId };
  const body = cfg.tokenRequestEncoding === 'form' ? new URLSearchParams(fields).toString() : JSON.stringify(fields);
  const ctype = cfg.tokenRequestEncoding === 'form' ? 'application/x-www-form-urlencoded' : 'application/json';
  let r;
  try {
    r = await httpJson(cfg.tokenUrl, { method: 'POST', headers: { 'Content-Type': ctype, Accept: 'application/json' }, body }, cfg.httpTimeoutSeconds * 1000);
  } catch (e) {
    const aborted = e instanceof Error && e.name === 'AbortError';
    return { ok: false, kind: 'transient', detail: aborted ? `token endpoint timed out after ${cfg.httpTimeoutSeconds} s` : `token endpoint unreachable: ${errMsg(e)}` };
  }
  const j = r.json || {};
  // Expiry is computed from the time of the answer, like Claude does; a stale start-of-run time
  // would make a later rotation look older than an earlier one.
  const now = clock();
  if (r.status === 200) {
    if (typeof j.access_token !== 'string' || !j.access_token || typeof j.expires_in !== 'number') {
      return { ok: false, kind: 'transient', detail: 'token endpoint answered 200 without access_token/expires_in' };
    }
    remember(j.access_token);
    if (typeof j.refresh_token === 'string') remember(j.refresh_token);
    /** @type {Partial<OAuth>} */
    const o = { accessToken: j.access_token, expiresAt: now + j.expires_in * 1000 };
    if (typeof j.refresh_token === 'string' && j.refresh_token) o.refreshToken = j.refresh_token;
    if (typeof j.refresh_token_expires_in === 'number') o.refreshTokenExpiresAt = now + j.refresh_token_expires_in * 1000;
    if (typeof j.scope === 'string' && j.scope) o.scopes = j.scope.split(/\s+/).filter(Boolean);
    return { ok: true, oauth: o };
  }
  const code = typeof j.error === 'string' ? j.error : typeof j.error?.type === 'string' ? j.error.type : '';
  if ((r.status === 400 || r.status === 401) && code === 'invalid_grant') return { ok: false, kind: 'invalid_grant', detail: 'invalid_grant' };
  if (r.status === 429 || r.status >= 500) {
    const ra = Number(r.headers.get('retry-after'));
    return { ok: false, kind: 'transient', detail: `token endpoint answered ${r.status}`, retryAfterMs: Number.isFinite(ra) && ra > 0 ? ra * 1000 : undefined };
  }
  return { ok: false, kind: 'rejected', detail: `token endpoint answered ${r.status}${code ? ` (${code})` : ''}` };
}

/**
 * @param {Config} cfg @param {string} accessToken
 * @returns {Promise<{ok: true, email: string} | {ok: false, kind: 'unauthorized'|'transient', detail: string}>}
 */
export async function fetchProfile(cfg, accessToken) {
  let r;
  try {
    r = await httpJson(cfg.profileUrl, { method: 'GET', headers: { Authorization: `Bearer ${accessToken}`, 'anthropic-beta': cfg.profileBeta, Accept: 'application/json' } }, cfg.httpTimeoutSeconds * 1000);
  } catch (e) {
    return { ok: false, kind: 'transient', detail: `profile endpoint unreachable: ${errMsg(e)}` };
  }
  if (r.status === 401 || r.status === 403) return { ok: false, kind: 'unauthorized', detail: `profile endpoint answered ${r.status}` };
  if (r.status !== 200) return { ok: false, kind: 'transient', detail: `profile endpoint answered ${r.status}` };
  const a = r.json && r.json.account;
  const email = a && (typeof a.email === 'string' ? a.email : typeof a.email_address === 'string' ? a.email_address : null);
  if (!email) return { ok: false, kind: 'transient', detail: 'profile answer has no account email' };
  return { ok: true, email };
}
