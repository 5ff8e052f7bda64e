// @ts-check
/** claude-token-renew: Vault (KV v2 + AppRole), the user's own path only. */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import { CasConflict, VAULT_TOKEN_MIN_LEFT_MS, VaultDenied, VaultUnavailable, errMsg, log, remember, sha256 } from './core.mjs';
import { ensurePrivateDir, readNoFollow, writeAtomic } from './files.mjs';

/**
 * @typedef {import('./config.mjs').Config} Config @typedef {import('./config.mjs').Paths} Paths
 * @typedef {import('./files.mjs').OAuth} OAuth
 */

// ---------------------------------------------------------------------------------------
// HTTP

/**
 * @param {string} url @param {RequestInit} init @param {number} timeoutMs
 * @returns {Promise<{status: number, headers: Headers, json: any}>}
 */
export async function httpJson(url, init, timeoutMs) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const res = await fetch(url, { ...init, signal: ac.signal, redirect: 'error' });
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: res.status, headers: res.headers, json };
  } finally {
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------------------
// Vault (KV v2 + AppRole)

/**
 * @typedef {{version: number, deleted: boolean, hash: string|null, expiresAt: number|null, refreshTokenExpiresAt: number|null}} VaultView
 */
export class Vault {
  /** @param {Config} cfg @param {string} user @param {Paths} paths @param {{readOnly?: boolean}} [o] */
  constructor(cfg, user, paths, o = {}) {
    this.readOnly = !!o.readOnly;
    this.cfg = cfg;
    this.user = user;
    this.paths = paths;
    this.timeoutMs = cfg.httpTimeoutSeconds * 1000;
    /** @type {string|null} */
    this.token = null;
    this.tokenFromCache = false;
    this.reauthed = false;
    this.logins = 0;
    this.writes = 0;
  }
  get dataPath() {
    return `${this.cfg.kvMount}/data/${this.cfg.kvPrefix}/${this.user}`;
  }
  get metaPath() {
    return `${this.cfg.kvMount}/metadata/${this.cfg.kvPrefix}/${this.user}`;
  }
  /** @param {string} method @param {string} p @param {unknown} body @param {string|null} token */
  async raw(method, p, body, token) {
    /** @type {Record<string, string>} */
    const headers = { 'X-Vault-Request': 'true' };
    if (token) headers['X-Vault-Token'] = token;
    if (this.cfg.vaultNamespace) headers['X-Vault-Namespace'] = this.cfg.vaultNamespace;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r;
    try {
      r = await httpJson(`${this.cfg.vaultAddr}/v1/${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }, this.timeoutMs);
    } catch (e) {
      throw new VaultUnavailable(`Vault unreachable: ${errMsg(e)}`);
    }
    if (r.status >= 500 || r.status === 429 || r.status === 412) throw new VaultUnavailable(`Vault answered ${r.status} on ${p}`);
    return r;
  }
  async loadCachedToken() {
    const r = await readNoFollow(this.paths.vaultTokenFile);
    if (r.kind !== 'ok') return null;
    try {
      const j = JSON.parse(r.text);
      if (typeof j.token === 'string' && typeof j.expiresAt === 'number' && j.expiresAt - Date.now() > VAULT_TOKEN_MIN_LEFT_MS) {
        remember(j.token);
        return /** @type {string} */ (j.token);
      }
    } catch {
      /* ignore a bad cache */
    }
    return null;
  }
  async dropCachedToken() {
    this.token = null;
    if (!this.readOnly) await fsp.unlink(this.paths.vaultTokenFile).catch(() => {});
  }
  async login() {
    const r = await readNoFollow(this.paths.vaultCredFile);
    if (r.kind !== 'ok') throw new VaultDenied(`AppRole credential ${this.paths.vaultCredFile} is ${r.kind === 'missing' ? 'missing' : 'not readable'}`);
    let cred;
    try {
      cred = JSON.parse(r.text);
    } catch {
      throw new VaultDenied(`AppRole credential ${this.paths.vaultCredFile} is not valid JSON`);
    }
    if (typeof cred.role_id !== 'string' || typeof cred.secret_id !== 'string') throw new VaultDenied(`AppRole credential ${this.paths.vaultCredFile} lacks role_id/secret_id`);
    remember(cred.secret_id);
    remember(cred.role_id);
    try {
      const st = fs.statSync(this.paths.vaultCredFile);
      if (st.mode & 0o077) log('warn', `${this.paths.vaultCredFile} is readable by others (mode ${(st.mode & 0o777).toString(8)}); it should be 0600`);
    } catch {
      /* ignore */
    }
    this.logins++;
    const res = await this.raw('POST', `auth/${this.cfg.approleMount}/login`, { role_id: cred.role_id, secret_id: cred.secret_id }, null);
    const auth = res.json && res.json.auth;
    if (res.status !== 200 || !auth || typeof auth.client_token !== 'string') {
      const why = res.json && Array.isArray(res.json.errors) ? res.json.errors.join('; ') : `HTTP ${res.status}`;
      throw new VaultDenied(`AppRole login refused: ${why}`);
    }
    remember(auth.client_token);
    if (typeof auth.accessor === 'string') remember(auth.accessor);
    this.token = auth.client_token;
    this.tokenFromCache = false;
    const ttl = typeof auth.lease_duration === 'number' && auth.lease_duration > 0 ? auth.lease_duration : 3600;
    if (this.readOnly) return;
    try {
      await ensurePrivateDir(this.paths.stateDir);
      await writeAtomic(this.paths.vaultTokenFile, JSON.stringify({ token: this.token, expiresAt: Date.now() + ttl * 1000 }), 0o600);
    } catch (e) {
      log('warn', `cannot cache the Vault token: ${errMsg(e)}`);
    }
  }
  /**
   * Authenticated call. A 403 with a cached token (revoked or expired) re-authenticates once
   * per run; a 403 after that is "denied" and is not retried.
   * @param {string} method @param {string} p @param {unknown} [body]
   */
  async call(method, p, body) {
    if (!this.token) {
      const cached = await this.loadCachedToken();
      if (cached) {
        this.token = cached;
        this.tokenFromCache = true;
      } else await this.login();
    }
    let r = await this.raw(method, p, body, this.token);
    if (r.status === 403 && !this.reauthed) {
      this.reauthed = true;
      log('info', this.tokenFromCache ? 'cached Vault token rejected; logging in again with AppRole' : 'Vault denied the request; logging in again once');
      await this.dropCachedToken();
      await this.login();
      r = await this.raw(method, p, body, this.token);
    }
    if (r.status === 403) throw new VaultDenied(`permission denied on ${p}`);
    return r;
  }
  /** @returns {Promise<VaultView|null>} */
  async readMeta() {
    const r = await this.call('GET', this.metaPath);
    if (r.status === 404) return null;
    if (r.status !== 200 || !r.json || !r.json.data) throw new VaultUnavailable(`unexpected Vault answer ${r.status} reading metadata`);
    const d = r.json.data;
    const version = Number(d.current_version) || 0;
    const v = d.versions && d.versions[String(version)];
    const cm = d.custom_metadata || {};
    const num = (/** @type {unknown} */ x) => (typeof x === 'string' && x !== '' && Number.isFinite(Number(x)) ? Number(x) : null);
    return {
      version,
      deleted: !v || !!v.destroyed || (typeof v.deletion_time === 'string' && v.deletion_time !== ''),
      hash: typeof cm.refreshTokenSha256 === 'string' ? cm.refreshTokenSha256 : null,
      expiresAt: num(cm.expiresAt),
      refreshTokenExpiresAt: num(cm.refreshTokenExpiresAt),
    };
  }
  /** @returns {Promise<{version: number, data: any}|null>} */
  async readData() {
    const r = await this.call('GET', this.dataPath);
    if (r.status === 404) return null;
    if (r.status !== 200 || !r.json || !r.json.data) throw new VaultUnavailable(`unexpected Vault answer ${r.status} reading data`);
    const data = r.json.data.data;
    if (data && typeof data.setupToken === 'string') remember(data.setupToken);
    if (data && data.claudeAiOauth) {
      remember(data.claudeAiOauth.accessToken);
      remember(data.claudeAiOauth.refreshToken);
    }
    return { version: Number(r.json.data.metadata && r.json.data.metadata.version) || 0, data };
  }
  /** @param {Record<string, unknown>} data @param {number} cas */
  async writeData(data, cas) {
    this.writes++;
    const r = await this.call('POST', this.dataPath, { options: { cas }, data });
    if (r.status === 200 || r.status === 204) return Number(r.json && r.json.data && r.json.data.version) || cas + 1;
    const errs = r.json && Array.isArray(r.json.errors) ? r.json.errors.join('; ') : '';
    if (r.status === 400 && /check-and-set/i.test(errs)) throw new CasConflict(`CAS conflict writing version ${cas + 1}`);
    throw new VaultUnavailable(`unexpected Vault answer ${r.status} writing data${errs ? `: ${errs}` : ''}`);
  }
  /** @param {Record<string, string>} custom */
  async writeMeta(custom) {
    this.writes++;
    const r = await this.call('POST', this.metaPath, { custom_metadata: custom });
    if (r.status !== 200 && r.status !== 204) throw new VaultUnavailable(`unexpected Vault answer ${r.status} writing metadata`);
  }
}

/** @param {OAuth} o @param {string} email */
export function vaultPayload(o, email) {
  return { claudeAiOauth: o, email, updatedAt: new Date().toISOString(), host: os.hostname() };
}
/** @param {OAuth} o @param {string} host */
export function vaultCustomMeta(o, host) {
  /** @type {Record<string, string>} */
  const m = {
    refreshTokenSha256: sha256(o.refreshToken),
    expiresAt: String(o.expiresAt),
    writtenAt: new Date().toISOString(),
    writer: `claude-token-renew@${host}`,
  };
  if (typeof o.refreshTokenExpiresAt === 'number') m.refreshTokenExpiresAt = String(o.refreshTokenExpiresAt);
  return m;
}
