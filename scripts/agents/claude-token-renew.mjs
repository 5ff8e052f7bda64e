#!/usr/bin/env node
// @ts-check
/**
 * claude-token-renew: keeps one workstation user's Claude Code login alive.
 *
 * Runs as the user (claude-token-renew@<user>.service, User=%i) from a timer. One `run`:
 *   1. reads the Vault KV v2 metadata of the user's own path (AppRole login, cached token);
 *   2. takes Claude Code's own two mkdir locks (<credDir>/.oauth_refresh.lock, ~/.claude.lock),
 *      re-reads ~/.claude/.credentials.json under them, restores it from Vault only when the
 *      local copy is missing/corrupt or the Vault copy is strictly newer, and refreshes the
 *      OAuth token only when the access token expires within refreshMarginSeconds;
 *   3. checks the token's identity on the profile endpoint (email must equal the roster email);
 *   4. pushes to Vault with check-and-set after every rotation (its own or Claude's);
 *   5. raises one alert per incident (login required, login deadline near, identity
 *      mismatch, Vault access denied), a "resolved" alert when it clears, and keeps the notice
 *      file that start-claude.sh shows. Alerts are messages handed to the root-side notifier
 *      on /run/workstations/alert.sock (workstations-alert.socket), which posts them to Slack;
 *      this agent never sees the Slack webhook.
 * The layout it relies on is in docs/CONTRACTS.md, section "Claude token renewal".
 *
 * No npm dependencies; Node >= 18 (Debian bookworm). Never logs, prints or passes in argv a
 * token, a secret_id or a Vault token.
 *
 * Usage: claude-token-renew run|status [options]   (see usage() below)
 *
 * Exit codes (the most severe condition of the run wins, in this order):
 *   5  identity mismatch: the login belongs to another email; refused, nothing synced
 *   4  login required: invalid_grant, login deadline passed, or no credentials anywhere
 *   6  Vault access denied: AppRole credential missing/invalid/revoked or policy denies
 *   3  transient: Vault/Anthropic unreachable, 429/5xx/timeout, lock busy; retried next timer
 *   2  usage or configuration error
 *   1  unexpected internal error (or the credentials file cannot be read)
 *   0  ok (including "nothing to do", "user disabled" and "backing off")
 */

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';

export const EXIT = Object.freeze({
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  TRANSIENT: 3,
  LOGIN_REQUIRED: 4,
  IDENTITY_MISMATCH: 5,
  VAULT_DENIED: 6,
});

const LOCK_STALE_MS = 60_000;
const LOCK_HEARTBEAT_MS = 5_000;
const MAX_FILE_BYTES = 1 << 20;
const VAULT_TOKEN_MIN_LEFT_MS = 120_000;
/** How long to wait for the notifier's answer (it gives Slack 10 s; its unit RuntimeMaxSec=30s). */
const ALERT_ANSWER_TIMEOUT_MS = 20_000;
export const DEFAULT_ALERT_SOCKET = '/run/workstations/alert.sock';

/** Environment variables that take precedence over (or move) the Claude login. */
export const OVERRIDE_VARS = Object.freeze([
  'CLAUDE_CODE_OAUTH_TOKEN',
  'ANTHROPIC_API_KEY',
  'ANTHROPIC_AUTH_TOKEN',
  'CLAUDE_CODE_USE_BEDROCK',
  'CLAUDE_CODE_USE_VERTEX',
  'CLAUDE_CODE_USE_FOUNDRY',
  'CLAUDE_CONFIG_DIR',
]);

const DEFAULTS = Object.freeze({
  kvMount: 'claude-tokens',
  kvPrefix: 'users',
  approleMount: 'approle',
  vaultNamespace: '',
  refreshMarginSeconds: 3600,
  loginDeadlineWarnDays: 3,
  httpTimeoutSeconds: 15,
  lockWaitSeconds: 75,
  backoffBaseSeconds: 300,
  backoffMaxSeconds: 7200,
  tokenRequestEncoding: 'json',
  profileBeta: 'oauth-2025-04-20',
  usersFile: '/etc/workstations/users.json',
  alertSocket: DEFAULT_ALERT_SOCKET,
  hostLabel: '',
});

// ---------------------------------------------------------------------------------------
// Secret hygiene: every secret the process handles is registered and scrubbed from output.

/** @type {Set<string>} */
const SECRETS = new Set();
/** @param {unknown} s */
function remember(s) {
  if (typeof s === 'string' && s.length >= 6) SECRETS.add(s);
}
/** @param {string} text */
export function redact(text) {
  let out = text;
  for (const s of SECRETS) if (out.includes(s)) out = out.split(s).join('[redacted]');
  return out.replace(/sk-ant-[A-Za-z0-9_-]{4,}/g, 'sk-ant-[redacted]');
}
/** @type {{quiet: boolean}} */
const LOGCFG = { quiet: false };
/** @param {'info'|'warn'|'error'} level @param {string} msg */
function log(level, msg) {
  if (LOGCFG.quiet && level === 'info') return;
  process.stderr.write(redact(`claude-token-renew: ${level}: ${msg}`) + '\n');
}
/** @param {string} msg */
function out(msg) {
  process.stdout.write(redact(msg) + '\n');
}
/** @param {string} s */
export function sha256(s) {
  return crypto.createHash('sha256').update(s, 'utf8').digest('hex');
}
/** @param {number|undefined|null} ms */
function iso(ms) {
  return typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : 'unknown';
}
/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** @param {unknown} e */
function errMsg(e) {
  if (e instanceof Error) {
    const cause = /** @type {any} */ (e).cause;
    const c = cause && (cause.code || cause.message);
    return c ? `${e.message} (${c})` : e.message;
  }
  return String(e);
}

class UsageError extends Error {}
class VaultUnavailable extends Error {}
class VaultDenied extends Error {}
class CasConflict extends Error {}
class LockBusy extends Error {}

// ---------------------------------------------------------------------------------------
// Config, users.json, paths

/**
 * @typedef {{
 *   vaultAddr: string, kvMount: string, kvPrefix: string, approleMount: string,
 *   vaultNamespace: string, tokenUrl: string, profileUrl: string, clientId: string,
 *   refreshMarginSeconds: number, loginDeadlineWarnDays: number, httpTimeoutSeconds: number,
 *   lockWaitSeconds: number, backoffBaseSeconds: number, backoffMaxSeconds: number,
 *   tokenRequestEncoding: string, profileBeta: string, usersFile: string,
 *   alertSocket: string, hostLabel: string
 * }} Config
 */

/** @param {string} file @returns {Config} */
export function loadConfig(file) {
  let raw;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read config ${file}: ${errMsg(e)}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new UsageError(`config ${file} is not a JSON object`);
  const cfg = /** @type {any} */ ({ ...DEFAULTS, ...raw });
  for (const k of ['vaultAddr', 'tokenUrl', 'profileUrl', 'clientId', 'kvMount', 'kvPrefix', 'approleMount']) {
    if (typeof cfg[k] !== 'string' || cfg[k] === '') throw new UsageError(`config ${file}: "${k}" must be a non-empty string`);
  }
  for (const k of ['vaultAddr', 'tokenUrl', 'profileUrl']) {
    try {
      const u = new URL(cfg[k]);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('not http(s)');
    } catch {
      throw new UsageError(`config ${file}: "${k}" must be an http(s) URL`);
    }
  }
  for (const k of ['refreshMarginSeconds', 'loginDeadlineWarnDays', 'httpTimeoutSeconds', 'lockWaitSeconds', 'backoffBaseSeconds', 'backoffMaxSeconds']) {
    if (typeof cfg[k] !== 'number' || !Number.isFinite(cfg[k]) || cfg[k] < 0) throw new UsageError(`config ${file}: "${k}" must be a non-negative number`);
  }
  if (cfg.tokenRequestEncoding !== 'json' && cfg.tokenRequestEncoding !== 'form') throw new UsageError(`config ${file}: "tokenRequestEncoding" must be "json" or "form"`);
  if (typeof cfg.alertSocket !== 'string') throw new UsageError(`config ${file}: "alertSocket" must be a string (a socket path, or "" for no alerts)`);
  cfg.vaultAddr = cfg.vaultAddr.replace(/\/+$/, '');
  return cfg;
}

/**
 * @typedef {{name: string, email?: string, state?: string, home?: string, claudeTokenRenew?: boolean}} UserEntry
 * @param {string} file @param {string} name @returns {UserEntry|null}
 */
function loadUser(file, name) {
  let raw;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read users file ${file}: ${errMsg(e)}`);
  }
  const users = raw && Array.isArray(raw.users) ? raw.users : null;
  if (!users) throw new UsageError(`users file ${file} has no "users" array`);
  return users.find((/** @type {any} */ u) => u && u.name === name) ?? null;
}

/**
 * @typedef {{
 *   home: string, credFile: string, credDir: string, locks: string[], vaultCredFile: string,
 *   stateDir: string, stateFile: string, vaultTokenFile: string, noticeFile: string,
 *   alertSocket: string
 * }} Paths
 * @param {Record<string, string|boolean>} opts @param {Config} cfg @param {string} user
 * @returns {Paths}
 */
function resolvePaths(opts, cfg, user) {
  const home = path.resolve(String(opts.home || process.env.HOME || os.homedir()));
  const claudeDir = process.env.CLAUDE_CONFIG_DIR ? path.resolve(process.env.CLAUDE_CONFIG_DIR) : path.join(home, '.claude');
  const credFile = path.resolve(String(opts['cred-file'] || path.join(claudeDir, '.credentials.json')));
  const credDir = path.dirname(credFile);
  const stateBase = process.env.XDG_STATE_HOME && !opts.home ? process.env.XDG_STATE_HOME : path.join(home, '.local', 'state');
  const stateDir = path.resolve(String(opts['state-dir'] || path.join(stateBase, 'claude-token-renew')));
  const alertSocket = opts['alert-socket'] !== undefined ? String(opts['alert-socket']) : cfg.alertSocket;
  void user;
  return {
    home,
    credFile,
    credDir,
    // Claude Code's own refresh locks, in the order it takes them.
    locks: [path.join(credDir, '.oauth_refresh.lock'), path.join(home, '.claude.lock')],
    vaultCredFile: path.resolve(String(opts['vault-cred'] || path.join(home, '.config', 'claude-token-renew', 'vault.json'))),
    stateDir,
    stateFile: path.join(stateDir, 'state.json'),
    vaultTokenFile: path.join(stateDir, 'vault-token.json'),
    noticeFile: path.resolve(String(opts['notice-file'] || path.join(home, '.claude-token-renew.notice'))),
    alertSocket: alertSocket ? path.resolve(alertSocket) : '',
  };
}

// ---------------------------------------------------------------------------------------
// Safe file I/O

/**
 * Reads a regular file without following a symlink at the last component.
 * @param {string} file
 * @returns {Promise<{kind:'ok', text:string} | {kind:'missing'} | {kind:'symlink'} | {kind:'notfile'} | {kind:'toobig'} | {kind:'unreadable', error:string}>}
 */
async function readNoFollow(file) {
  /** @type {import('node:fs/promises').FileHandle|undefined} */
  let fh;
  try {
    fh = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = /** @type {any} */ (e).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    if (code === 'ELOOP') return { kind: 'symlink' };
    return { kind: 'unreadable', error: errMsg(e) };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { kind: 'notfile' };
    if (st.size > MAX_FILE_BYTES) return { kind: 'toobig' };
    return { kind: 'ok', text: await fh.readFile('utf8') };
  } finally {
    await fh.close();
  }
}

/**
 * Atomic write: temp file in the same dir (O_EXCL|O_NOFOLLOW), fsync, rename over the target
 * (a symlink at the target is replaced, never followed), fsync the dir.
 * @param {string} file @param {string} content @param {number} mode
 */
export async function writeAtomic(file, content, mode = 0o600) {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `${path.basename(file)}.tmp.${crypto.randomBytes(6).toString('hex')}`);
  const fh = await fsp.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
  try {
    try {
      await fh.writeFile(content, 'utf8');
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.unlink(tmp).catch(() => {});
    throw e;
  }
  try {
    const d = await fsp.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    /* fsync of a directory is best effort */
  }
}

/**
 * @typedef {{accessToken: string, refreshToken: string, expiresAt: number, refreshTokenExpiresAt?: number, scopes?: string[], [k: string]: unknown}} OAuth
 * @typedef {{kind:'ok', doc: Record<string, unknown>, oauth: OAuth}
 *   | {kind:'nologin', doc: Record<string, unknown>}
 *   | {kind:'missing'} | {kind:'symlink'} | {kind:'corrupt', reason: string}
 *   | {kind:'unreadable', error: string}} Local
 */

/** @param {unknown} o @returns {o is OAuth} */
export function isValidOAuth(o) {
  const x = /** @type {any} */ (o);
  return !!x && typeof x === 'object' && typeof x.accessToken === 'string' && x.accessToken.length > 0 &&
    typeof x.refreshToken === 'string' && x.refreshToken.length > 0 &&
    typeof x.expiresAt === 'number' && Number.isFinite(x.expiresAt) &&
    (x.refreshTokenExpiresAt === undefined || x.refreshTokenExpiresAt === null || typeof x.refreshTokenExpiresAt === 'number');
}

/** @param {string} file @returns {Promise<Local>} */
async function readLocal(file) {
  const r = await readNoFollow(file);
  if (r.kind === 'missing' || r.kind === 'symlink') return { kind: r.kind };
  if (r.kind === 'unreadable') return r;
  if (r.kind === 'notfile') return { kind: 'corrupt', reason: 'not a regular file' };
  if (r.kind === 'toobig') return { kind: 'corrupt', reason: 'file too large' };
  let doc;
  try {
    doc = JSON.parse(r.text);
  } catch {
    return { kind: 'corrupt', reason: r.text.trim() === '' ? 'empty file' : 'invalid JSON' };
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return { kind: 'corrupt', reason: 'not a JSON object' };
  const oauth = doc.claudeAiOauth;
  if (oauth === undefined || oauth === null) return { kind: 'nologin', doc };
  if (!isValidOAuth(oauth)) return { kind: 'corrupt', reason: 'claudeAiOauth is incomplete' };
  remember(oauth.accessToken);
  remember(oauth.refreshToken);
  return { kind: 'ok', doc, oauth };
}

/** @param {string} dir */
async function ensurePrivateDir(dir) {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
}

// ---------------------------------------------------------------------------------------
// Claude Code's mkdir locks: stale after 60 s, heartbeat every 5 s, never steal a live one.

class DirLock {
  /** @param {string} p */
  constructor(p) {
    this.path = p;
    /** @type {number|null} */
    this.ino = null;
  }
  /** @returns {Promise<boolean>} */
  async tryAcquire() {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fsp.mkdir(this.path);
        this.ino = (await fsp.stat(this.path)).ino;
        return true;
      } catch (e) {
        if (/** @type {any} */ (e).code !== 'EEXIST') throw e;
      }
      if (attempt > 0) return false;
      // Held: only a lock whose heartbeat stopped more than 60 s ago may be cleared.
      let st;
      try {
        st = await fsp.stat(this.path);
      } catch {
        continue; // vanished meanwhile: try again
      }
      if (Date.now() - st.mtimeMs <= LOCK_STALE_MS) return false;
      const again = await fsp.stat(this.path).catch(() => null);
      if (!again || again.ino !== st.ino || Date.now() - again.mtimeMs <= LOCK_STALE_MS) continue;
      log('warn', `removing stale lock ${this.path} (no heartbeat since ${iso(st.mtimeMs)})`);
      await fsp.rmdir(this.path).catch(() => {});
    }
    return false;
  }
  async heartbeat() {
    if (this.ino === null) return;
    const now = new Date();
    await fsp.utimes(this.path, now, now).catch(() => {});
  }
  /** @returns {Promise<boolean>} */
  async stillHeld() {
    if (this.ino === null) return false;
    const st = await fsp.stat(this.path).catch(() => null);
    return !!st && st.ino === this.ino;
  }
  async release() {
    if (this.ino === null) return;
    if (await this.stillHeld()) await fsp.rmdir(this.path).catch(() => {});
    this.ino = null;
  }
}

/**
 * Takes all locks or none (never holds one while waiting for the other, so it cannot
 * deadlock with Claude whatever order Claude uses), then heartbeats them every 5 s.
 * @param {string[]} paths @param {number} waitMs
 */
async function acquireLocks(paths, waitMs) {
  const locks = paths.map((p) => new DirLock(p));
  const deadline = Date.now() + waitMs;
  for (;;) {
    /** @type {DirLock[]} */
    const held = [];
    let ok = true;
    for (const l of locks) {
      if (await l.tryAcquire()) held.push(l);
      else {
        ok = false;
        break;
      }
    }
    if (ok) break;
    for (const l of held.reverse()) await l.release();
    if (Date.now() >= deadline) throw new LockBusy(`Claude's credential locks are held by a live process (waited ${Math.round(waitMs / 1000)} s)`);
    await sleep(150 + Math.floor(Math.random() * 250));
  }
  const timer = setInterval(() => {
    for (const l of locks) void l.heartbeat();
  }, LOCK_HEARTBEAT_MS);
  timer.unref();
  return {
    async stillHeld() {
      for (const l of locks) if (!(await l.stillHeld())) return false;
      return true;
    },
    async release() {
      clearInterval(timer);
      for (const l of [...locks].reverse()) await l.release();
    },
  };
}

// ---------------------------------------------------------------------------------------
// HTTP

/**
 * @param {string} url @param {RequestInit} init @param {number} timeoutMs
 * @returns {Promise<{status: number, headers: Headers, json: any}>}
 */
async function httpJson(url, init, timeoutMs) {
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
class Vault {
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

// ---------------------------------------------------------------------------------------
// Anthropic OAuth + profile

/**
 * @param {Config} cfg @param {string} refreshToken @param {() => number} clock
 * @returns {Promise<{ok: true, oauth: Partial<OAuth>} | {ok: false, kind: 'invalid_grant'|'transient'|'rejected', detail: string, retryAfterMs?: number}>}
 */
async function oauthRefresh(cfg, refreshToken, clock) {
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
async function fetchProfile(cfg, accessToken) {
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

// ---------------------------------------------------------------------------------------
// Overrides

/**
 * Names (never values) of variables that would override the login, with where they are set.
 * @param {string} home @param {NodeJS.ProcessEnv} env @returns {string[]}
 */
export function detectOverrides(home, env) {
  /** @type {string[]} */
  const found = [];
  for (const v of OVERRIDE_VARS) if (env[v]) found.push(`${v} (agent environment)`);
  const rc = ['.bashrc', '.bash_profile', '.bash_login', '.profile', '.zshrc', '.zshenv', '.zprofile', '.config/fish/config.fish', '.pam_environment'];
  try {
    for (const f of fs.readdirSync(path.join(home, '.config', 'environment.d'))) if (f.endsWith('.conf')) rc.push(path.join('.config', 'environment.d', f));
  } catch {
    /* none */
  }
  const re = new RegExp(`^\\s*(?:export\\s+|set\\s+-[a-zA-Z]*\\s+|setenv\\s+|declare\\s+-x\\s+)?(${OVERRIDE_VARS.join('|')})(?:\\s*=|\\s+\\S)`);
  for (const rel of rc) {
    let text;
    try {
      const p = path.join(home, rel);
      if (fs.statSync(p).size > 256 * 1024) continue;
      text = fs.readFileSync(p, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = re.exec(line);
      if (m) found.push(`${m[1]} (~/${rel})`);
    }
  }
  for (const rel of ['.claude/settings.json', '.claude/settings.local.json']) {
    try {
      const j = JSON.parse(fs.readFileSync(path.join(home, rel), 'utf8'));
      const envObj = j && typeof j.env === 'object' && j.env ? j.env : {};
      for (const v of OVERRIDE_VARS) if (envObj[v]) found.push(`${v} (~/${rel} "env")`);
      if (j && typeof j.apiKeyHelper === 'string' && j.apiKeyHelper) found.push(`apiKeyHelper (~/${rel})`);
    } catch {
      /* absent or not JSON */
    }
  }
  return [...new Set(found)];
}

// ---------------------------------------------------------------------------------------
// State, incidents, alerts, notice

/**
 * @typedef {'login-required'|'deadline-soon'|'identity-mismatch'|'vault-denied'} IncidentKind
 * @typedef {{since: string, alerted: boolean, detail: string}} Incident
 * @typedef {{
 *   version: 1,
 *   incidents: Partial<Record<IncidentKind, Incident>>,
 *   backoff: {failures: number, until: number, lastError: string} | null,
 *   deadRefreshHash: string | null,
 *   verified: {refreshHash: string, accessHash: string, email: string, at: string} | null,
 *   mismatch: {refreshHash: string, accessHash: string, email: string} | null,
 *   lastSync: {hash: string, version: number, at: string} | null,
 *   history: string[],
 *   lastRun: {at: string, exit: number, actions: string[]} | null
 * }} State
 */

/** @returns {State} */
function emptyState() {
  return { version: 1, incidents: {}, backoff: null, deadRefreshHash: null, verified: null, mismatch: null, lastSync: null, history: [], lastRun: null };
}
/** @param {Paths} paths @returns {Promise<State>} */
async function loadState(paths) {
  const r = await readNoFollow(paths.stateFile);
  if (r.kind !== 'ok') return emptyState();
  try {
    const j = JSON.parse(r.text);
    if (j && j.version === 1) return { ...emptyState(), ...j, incidents: { ...(j.incidents || {}) }, history: Array.isArray(j.history) ? j.history.filter((/** @type {unknown} */ h) => typeof h === 'string') : [] };
  } catch {
    /* start over */
  }
  return emptyState();
}
/** @param {Paths} paths @param {State} st */
async function saveState(paths, st) {
  await ensurePrivateDir(paths.stateDir);
  await writeAtomic(paths.stateFile, JSON.stringify(st, null, 2) + '\n', 0o600);
}

const SSO_KINDS = /** @type {IncidentKind[]} */ (['login-required', 'deadline-soon']);

/**
 * The notifier takes one line of at most 4096 bytes with a text of at most 3000 characters;
 * a longer alert is cut (never refused forever). @param {string} text
 */
function fitAlert(text) {
  let t = text;
  while (t.length > 3000 || Buffer.byteLength(JSON.stringify({ text: t })) > 4000) t = `${t.slice(0, Math.min(2990, Math.floor(t.length * 0.9)))}…`;
  return t;
}

/**
 * Hands one alert to the root-side notifier (workstations-alert.socket): connects to the
 * socket, sends `{"text": ...}` as one line, half-closes and reads the one-line answer.
 * The notifier knows the sender from the kernel's peer credentials and posts to Slack; this
 * process never sees the webhook. `ok` and `disabled` mean handled; `error ...`, no answer,
 * a connection failure or a timeout mean "retry on the next run".
 * @param {string} socketPath @param {string} text @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
async function sendAlert(socketPath, text, timeoutMs = ALERT_ANSWER_TIMEOUT_MS) {
  if (!socketPath) {
    log('warn', `no alert socket configured; alert not sent: ${text}`);
    return true;
  }
  /** @type {{kind: 'answer', line: string} | {kind: 'failed', detail: string}} */
  const r = await new Promise((resolve) => {
    let buf = '';
    let done = false;
    /** @param {{kind: 'answer', line: string} | {kind: 'failed', detail: string}} v */
    const finish = (v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const sock = net.connect({ path: socketPath });
    const timer = setTimeout(() => finish({ kind: 'failed', detail: `no answer within ${timeoutMs / 1000} s` }), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.end(`${JSON.stringify({ text: fitAlert(text) })}\n`));
    sock.on('data', (/** @type {string} */ d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish({ kind: 'answer', line: buf.slice(0, nl) });
      else if (buf.length > 1024) finish({ kind: 'failed', detail: 'answer too long' });
    });
    sock.on('end', () => (buf ? finish({ kind: 'answer', line: buf }) : finish({ kind: 'failed', detail: 'the notifier closed the connection without an answer' })));
    sock.on('close', () => finish({ kind: 'failed', detail: 'the notifier closed the connection without an answer' }));
    sock.on('error', (e) => finish({ kind: 'failed', detail: errMsg(e) }));
  });
  if (r.kind === 'failed') {
    log('warn', `alert socket ${socketPath}: ${r.detail}; will retry the alert next run`);
    return false;
  }
  const answer = r.line.trim().slice(0, 300);
  if (answer === 'ok') return true;
  if (answer === 'disabled') {
    log('warn', `Slack is disabled on this host; alert not sent: ${text}`);
    return true;
  }
  log('warn', `the notifier did not send the alert (${answer.startsWith('error') ? answer : `unexpected answer ${JSON.stringify(answer)}`}); will retry the alert next run`);
  return false;
}

// ---------------------------------------------------------------------------------------
// The run

/**
 * @typedef {{kind: IncidentKind, detail: string}} Condition
 */

/** @param {OAuth} o @param {string} email */
function vaultPayload(o, email) {
  return { claudeAiOauth: o, email, updatedAt: new Date().toISOString(), host: os.hostname() };
}
/** @param {OAuth} o @param {string} host */
function vaultCustomMeta(o, host) {
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

/**
 * @param {Record<string, string|boolean>} opts
 * @returns {Promise<number>}
 */
async function cmdRun(opts) {
  const cfg = loadConfig(String(opts.config));
  const user = String(opts.user || os.userInfo().username);
  const entry = loadUser(String(opts['users-file'] || cfg.usersFile), user);
  if (!entry) {
    log('info', `${user} is not in the users file; nothing to do`);
    return EXIT.OK;
  }
  if (entry.state && entry.state !== 'active') {
    log('info', `${user} is ${entry.state}; nothing to do`);
    return EXIT.OK;
  }
  if (entry.claudeTokenRenew === false) {
    log('info', `${user} opted out of token renewal; nothing to do`);
    return EXIT.OK;
  }
  if (typeof entry.email !== 'string' || !entry.email.includes('@')) throw new UsageError(`users file has no email for ${user}`);
  const rosterEmail = entry.email;
  const paths = resolvePaths(opts, cfg, user);
  checkOwner(paths.home);
  // One run at a time per user (a manual run may overlap the timer's).
  await ensurePrivateDir(paths.stateDir);
  let runLock;
  try {
    runLock = await acquireLocks([path.join(paths.stateDir, 'run.lock')], cfg.lockWaitSeconds * 1000);
  } catch (e) {
    if (e instanceof LockBusy) {
      log('warn', 'another claude-token-renew run for this user is in progress');
      return EXIT.TRANSIENT;
    }
    throw e;
  }
  try {
    return await runLocked();
  } finally {
    await runLock.release();
  }

  async function runLocked() {
    const t0 = Date.now();
    const now = opts.now ? Number(opts.now) : t0;
    if (!Number.isFinite(now)) throw new UsageError('--now must be epoch milliseconds');
    /** The current time (--now plus the real time elapsed since the start). */
    const clock = () => now + (Date.now() - t0);
    const host = cfg.hostLabel || os.hostname();

    const state = await loadState(paths);
    const vault = new Vault(cfg, user, paths);
    /** @type {string[]} */
    const actions = [];
    /** @type {Set<number>} */
    const codes = new Set();
    /** @type {Map<IncidentKind, Condition>} */
    const active = new Map();
    /** @type {Set<IncidentKind>} */
    const evaluated = new Set();
    /** @param {IncidentKind} kind @param {string} detail */
    const raise = (kind, detail) => {
      active.set(kind, { kind, detail });
      evaluated.add(kind);
    };

    const overrides = detectOverrides(paths.home, process.env);
    for (const o of overrides) log('warn', `override: ${o} takes precedence over the Claude login`);

    /** @type {'ok'|'down'|'denied'} */
    let vaultState = 'ok';
    /** @type {VaultView|null} */
    let meta = null;
    /** @param {unknown} e */
    const onVaultError = (e) => {
      if (e instanceof VaultDenied) {
        vaultState = 'denied';
        raise('vault-denied', e.message);
        log('error', `${e.message}; working from the local file only`);
      } else if (e instanceof VaultUnavailable) {
        vaultState = 'down';
        codes.add(EXIT.TRANSIENT);
        log('warn', `${e.message}; working from the local file only`);
      } else throw e;
    };
    try {
      meta = await vault.readMeta();
      evaluated.add('vault-denied');
    } catch (e) {
      onVaultError(e);
    }

    /** @type {OAuth|null} */
    let finalOAuth = null;
    for (let pass = 1; pass <= 3; pass++) {
      /** @type {{oauth: OAuth|null, push: boolean}} */
      let res;
      let lock;
      try {
        await ensurePrivateDir(paths.credDir);
        lock = await acquireLocks(paths.locks, cfg.lockWaitSeconds * 1000);
      } catch (e) {
        if (e instanceof LockBusy) {
          log('warn', e.message);
          codes.add(EXIT.TRANSIENT);
          break;
        }
        throw e;
      }
      try {
        res = await lockedPass(lock);
      } finally {
        await lock.release();
      }
      finalOAuth = res.oauth;
      if (!res.push || !res.oauth || vaultState !== 'ok') break;
      try {
        await push(res.oauth);
        break;
      } catch (e) {
        if (e instanceof CasConflict) {
          log('warn', `${e.message}; re-reading Vault and the local file`);
          actions.push('cas-conflict');
          if (pass === 3) {
            codes.add(EXIT.TRANSIENT);
            break;
          }
          try {
            meta = await vault.readMeta();
          } catch (e2) {
            onVaultError(e2);
            break;
          }
          continue;
        }
        onVaultError(e);
        break;
      }
    }

    // Login deadline warning, evaluated on the final local state.
    if (finalOAuth && !active.has('login-required') && !active.has('identity-mismatch')) {
      evaluated.add('deadline-soon');
      const dl = finalOAuth.refreshTokenExpiresAt;
      if (typeof dl === 'number' && dl - now <= cfg.loginDeadlineWarnDays * 86_400_000) {
        raise('deadline-soon', `the Claude login ends at ${iso(dl)} (in ${((dl - now) / 3_600_000).toFixed(1)} h); refreshing does not extend it`);
      }
    }
    if (active.has('login-required')) evaluated.add('deadline-soon');

    await settleIncidents();
    await writeNotice();
    state.lastRun = { at: new Date(now).toISOString(), exit: exitCode(), actions };
    await saveState(paths, state).catch((e) => log('warn', `cannot save state: ${errMsg(e)}`));
    out(`claude-token-renew: ${user}: ${actions.length ? actions.join(', ') : 'nothing to do'}; exit ${exitCode()}`);
    return exitCode();

    function exitCode() {
      if (active.has('identity-mismatch')) return EXIT.IDENTITY_MISMATCH;
      if (active.has('login-required')) return EXIT.LOGIN_REQUIRED;
      if (active.has('vault-denied')) return EXIT.VAULT_DENIED;
      if (codes.has(EXIT.ERROR)) return EXIT.ERROR;
      if (codes.has(EXIT.TRANSIENT)) return EXIT.TRANSIENT;
      return EXIT.OK;
    }

    /**
     * Records a refresh-token hash the first time it is seen in the local file (oldest first).
     * A hash seen again (an old copy put back) keeps its old place, so it stays "older".
     * @param {string} h
     */
    function seen(h) {
      const hist = state.history;
      if (hist.includes(h)) return;
      hist.push(h);
      // 256 rotations (about 3 a day) outlast a login's ~30-day life.
      if (hist.length > 256) hist.splice(0, hist.length - 256);
    }

    /**
     * Is a Vault copy (hash, expiresAt) strictly newer than the local login? The order in which
     * this host first saw the hashes in the local file decides (immune to clock steps):
     *  - both seen: the later one is newer (an old copy put back is older than Vault's);
     *  - Vault's seen, local's not: local is a rotation or login not seen yet, so it is newer;
     *  - otherwise (state lost, or a copy written elsewhere): compare expiresAt, which Claude
     *    and the agent both compute from the time of the refresh answer.
     * @param {string|null} vHash @param {number|null} vExpiresAt @param {OAuth} local
     */
    function vaultIsNewer(vHash, vExpiresAt, local) {
      const lHash = sha256(local.refreshToken);
      if (vHash === lHash) return false;
      const iV = vHash ? state.history.indexOf(vHash) : -1;
      const iL = state.history.indexOf(lHash);
      if (iV !== -1 && iL !== -1) return iV > iL;
      if (iV !== -1) return false;
      return vExpiresAt !== null && vExpiresAt > local.expiresAt;
    }

    /**
     * The part that runs under Claude's locks.
     * @param {{stillHeld(): Promise<boolean>}} lock
     * @returns {Promise<{oauth: OAuth|null, push: boolean}>}
     */
    async function lockedPass(lock) {
      let local = await readLocal(paths.credFile);
      if (local.kind === 'unreadable') {
        log('error', `cannot read ${paths.credFile}: ${local.error}; leaving it alone`);
        codes.add(EXIT.ERROR);
        return { oauth: null, push: false };
      }
      let push = false;
      let writeFailed = false;

      // 1. Restore from Vault: only if local is missing/corrupt, or Vault is strictly newer.
      if (vaultState === 'ok' && meta && !meta.deleted) {
        if (local.kind !== 'ok') {
          log('warn', `local credentials are ${local.kind === 'corrupt' ? `corrupt (${local.reason})` : local.kind}; trying Vault`);
          local = await tryRestore(local, null, `local was ${local.kind}`);
        } else {
          const h = sha256(local.oauth.refreshToken);
          const localDead = h === state.deadRefreshHash || (typeof local.oauth.refreshTokenExpiresAt === 'number' && local.oauth.refreshTokenExpiresAt <= now);
          if (meta.hash !== h && localDead) {
            // A dead local login (invalid_grant or past its deadline): a live Vault copy is better.
            local = await tryRestore(local, null, 'the local login is dead');
          } else if (meta.hash !== h) {
            if (meta.hash === null || meta.expiresAt === null || vaultIsNewer(meta.hash, meta.expiresAt, local.oauth)) {
              const before = local;
              local = await tryRestore(local, local.oauth, 'the Vault copy is newer');
              if (local === before) push = true;
            } else push = true; // local is newer (Claude or a new login rotated it): push
          }
        }
      } else if (vaultState === 'ok' && local.kind === 'ok') {
        push = true; // nothing usable in Vault yet
      }

      if (local.kind !== 'ok') {
        if (vaultState === 'ok') raise('login-required', 'no usable Claude credentials locally or in Vault');
        else log('warn', `local credentials are ${local.kind} and Vault is ${vaultState}; nothing to restore from`);
        return { oauth: null, push: false };
      }

      let oauth = local.oauth;
      let rHash = sha256(oauth.refreshToken);
      let aHash = sha256(oauth.accessToken);
      seen(rHash);

      // 2. Dead login? Never present a refresh token that already got invalid_grant.
      if (state.deadRefreshHash === rHash) {
        raise('login-required', 'the refresh token was rejected (invalid_grant); an interactive login is needed');
        return { oauth, push: false };
      }
      const deadline = oauth.refreshTokenExpiresAt;
      if (typeof deadline === 'number' && deadline <= now) {
        raise('login-required', `the Claude login ended at ${iso(deadline)}`);
        return { oauth, push: false };
      }

      // 3. Identity of the current access token, if it can be checked now.
      let identity = await checkIdentity(oauth, rHash, aHash);
      if (identity === 'mismatch') return { oauth, push: false };

      // 4. Refresh only when the access token expires soon (or the profile endpoint rejected it).
      const nearExpiry = oauth.expiresAt - now < cfg.refreshMarginSeconds * 1000;
      if (!nearExpiry && identity !== 'rejected') state.backoff = null;
      if (nearExpiry || identity === 'rejected') {
        if (vaultState !== 'ok') {
          log('info', `access token expires ${iso(oauth.expiresAt)} but Vault is ${vaultState}; not rotating (Claude refreshes on its own)`);
        } else if (state.backoff && state.backoff.until > now) {
          log('info', `backing off token refresh until ${iso(state.backoff.until)} after: ${state.backoff.lastError}`);
        } else {
          const r = await oauthRefresh(cfg, oauth.refreshToken, clock);
          if (r.ok) {
            /** @type {OAuth} */
            const next = { ...oauth, ...r.oauth };
            if (!(await lock.stillHeld())) log('warn', 'a credential lock was lost during the refresh; writing the new token at once');
            const doc = local.doc;
            doc.claudeAiOauth = next;
            try {
              await writeAtomic(paths.credFile, JSON.stringify(doc), 0o600);
            } catch (e) {
              log('error', `cannot write ${paths.credFile}: ${errMsg(e)}; pushing the new token to Vault so it is not lost`);
              codes.add(EXIT.ERROR);
              writeFailed = true;
            }
            const wasVerified = identity === 'ok';
            oauth = next;
            rHash = sha256(oauth.refreshToken);
            aHash = sha256(oauth.accessToken);
            seen(rHash);
            state.backoff = null;
            actions.push('refreshed');
            log('info', `refreshed the access token; it now expires ${iso(oauth.expiresAt)}`);
            push = true;
            // Verify the new token too; if the profile endpoint is unavailable right now, a
            // refresh of a verified login is the same identity.
            identity = await checkIdentity(oauth, rHash, aHash);
            if (identity === 'mismatch') return { oauth, push: false };
            if (identity !== 'ok' && wasVerified && state.verified) {
              state.verified = { ...state.verified, refreshHash: rHash, accessHash: aHash };
              identity = 'ok';
            }
          } else if (r.kind === 'invalid_grant') {
            state.deadRefreshHash = rHash;
            state.backoff = null;
            raise('login-required', 'the refresh token was rejected (invalid_grant); an interactive login is needed');
            actions.push('invalid_grant');
            return { oauth, push: false };
          } else {
            const failures = (state.backoff?.failures ?? 0) + 1;
            const base = Math.min(cfg.backoffBaseSeconds * 1000 * 2 ** (failures - 1), cfg.backoffMaxSeconds * 1000);
            const wait = Math.max(base * (0.8 + Math.random() * 0.4), r.retryAfterMs ?? 0);
            state.backoff = { failures, until: clock() + wait, lastError: r.detail };
            codes.add(EXIT.TRANSIENT);
            actions.push('refresh-deferred');
            log('warn', `token refresh failed: ${r.detail}; retrying after ${iso(state.backoff.until)}`);
          }
        }
      }
      // A fresh, usable login clears a login-required incident.
      evaluated.add('login-required');
      if (push && identity !== 'ok' && !writeFailed) {
        log('warn', 'identity not verified yet; Vault push deferred to the next run');
        codes.add(EXIT.TRANSIENT);
        push = false;
      }
      return { oauth, push };
    }

    /**
     * @param {Local} local @param {OAuth|null} mustBeNewerThan a valid local login the Vault copy must be newer than
     * @param {string} why
     * @returns {Promise<Local>}
     */
    async function tryRestore(local, mustBeNewerThan, why) {
      let got;
      try {
        got = await vault.readData();
      } catch (e) {
        onVaultError(e);
        return local;
      }
      const o = got && got.data && got.data.claudeAiOauth;
      if (!isValidOAuth(o)) {
        log('warn', 'the Vault copy is missing or incomplete; not restoring');
        return local;
      }
      const h = sha256(o.refreshToken);
      if (mustBeNewerThan !== null && !vaultIsNewer(h, o.expiresAt, mustBeNewerThan)) {
        log('info', 'the Vault copy is not newer than the local file; keeping local');
        return local;
      }
      if (h === state.deadRefreshHash || (typeof o.refreshTokenExpiresAt === 'number' && o.refreshTokenExpiresAt <= now)) {
        log('warn', 'the Vault copy is a dead login; not restoring');
        return local;
      }
      if (typeof got?.data.email === 'string' && got.data.email.toLowerCase() !== rosterEmail.toLowerCase()) {
        log('warn', `the Vault copy belongs to ${got.data.email}, not ${rosterEmail}; not restoring`);
        return local;
      }
      /** @type {Record<string, unknown>} */
      const doc = local.kind === 'ok' || local.kind === 'nologin' ? local.doc : {};
      doc.claudeAiOauth = o;
      await writeAtomic(paths.credFile, JSON.stringify(doc), 0o600);
      actions.push(`restored-from-vault(v${got?.version})`);
      log('warn', `restored ${paths.credFile} from Vault version ${got?.version} (${why})`);
      state.lastSync = { hash: h, version: got?.version ?? 0, at: new Date().toISOString() };
      return { kind: 'ok', doc, oauth: o };
    }

    /**
     * @param {OAuth} oauth @param {string} rHash @param {string} aHash
     * @returns {Promise<'ok'|'mismatch'|'unknown'|'rejected'>}
     */
    async function checkIdentity(oauth, rHash, aHash) {
      const v = state.verified;
      if (v && (v.accessHash === aHash || v.refreshHash === rHash) && v.email.toLowerCase() === rosterEmail.toLowerCase()) {
        evaluated.add('identity-mismatch');
        return 'ok';
      }
      const mm = state.mismatch;
      if (mm && (mm.accessHash === aHash || mm.refreshHash === rHash)) {
        log('error', `identity mismatch (login unchanged): token belongs to ${mm.email}, roster says ${rosterEmail}`);
        raise('identity-mismatch', `the Claude login on this host belongs to ${mm.email}, not ${rosterEmail}; refusing to renew or store it`);
        return 'mismatch';
      }
      if (oauth.expiresAt <= now + 30_000) return 'unknown';
      const p = await fetchProfile(cfg, oauth.accessToken);
      if (!p.ok) {
        log('warn', `cannot verify identity: ${p.detail}`);
        return p.kind === 'unauthorized' ? 'rejected' : 'unknown';
      }
      evaluated.add('identity-mismatch');
      if (p.email.toLowerCase() !== rosterEmail.toLowerCase()) {
        state.mismatch = { refreshHash: rHash, accessHash: aHash, email: p.email };
        raise('identity-mismatch', `the Claude login on this host belongs to ${p.email}, not ${rosterEmail}; refusing to renew or store it`);
        log('error', `identity mismatch: token belongs to ${p.email}, roster says ${rosterEmail}`);
        return 'mismatch';
      }
      state.mismatch = null;
      state.verified = { refreshHash: rHash, accessHash: aHash, email: p.email, at: new Date(now).toISOString() };
      return 'ok';
    }

    /** @param {OAuth} o */
    async function push(o) {
      const cas = meta ? meta.version : 0;
      const version = await vault.writeData(vaultPayload(o, rosterEmail), cas);
      await vault.writeMeta(vaultCustomMeta(o, host));
      meta = { version, deleted: false, hash: sha256(o.refreshToken), expiresAt: o.expiresAt, refreshTokenExpiresAt: o.refreshTokenExpiresAt ?? null };
      state.lastSync = { hash: meta.hash ?? '', version, at: new Date().toISOString() };
      actions.push(`pushed-to-vault(v${version})`);
      log('info', `pushed the current login to Vault (version ${version})`);
    }

    async function settleIncidents() {
      const who = `${user} (${rosterEmail}) on ${host}`;
      /** @type {Record<IncidentKind, string>} */
      const titles = {
        'login-required': `:rotating_light: Claude login required for ${who}`,
        'deadline-soon': `:hourglass: Claude login for ${who} ends soon`,
        'identity-mismatch': `:no_entry: Claude identity mismatch for ${who}`,
        'vault-denied': `:lock: claude-token-renew for ${who} cannot use Vault`,
      };
      const ssoActive = SSO_KINDS.some((k) => active.has(k));
      for (const kind of /** @type {IncidentKind[]} */ (Object.keys(titles))) {
        const cond = active.get(kind);
        const inc = state.incidents[kind];
        if (cond) {
          const cur = inc ?? { since: new Date(now).toISOString(), alerted: false, detail: cond.detail };
          cur.detail = cond.detail;
          if (!cur.alerted) {
            const hint = kind === 'identity-mismatch' ? ` ${user} must log in again with ${rosterEmail}.`
              : kind === 'vault-denied' ? ' Check the AppRole credential and policy.'
              : ` ${user} must start claude and run /login (as ${rosterEmail}).`;
            cur.alerted = await sendAlert(paths.alertSocket, `${titles[kind]}: ${cond.detail}.${hint}`);
            if (cur.alerted) actions.push(`alerted:${kind}`);
          }
          state.incidents[kind] = cur;
        } else if (inc && evaluated.has(kind)) {
          // Cleared. An SSO incident superseded by another SSO incident ends silently.
          const silent = SSO_KINDS.includes(kind) && ssoActive;
          if (inc.alerted && !silent) {
            const ok = await sendAlert(paths.alertSocket, `:white_check_mark: resolved: ${titles[kind].replace(/^:[a-z_]+: /, '')} (since ${inc.since}) is resolved.`);
            if (!ok) continue; // keep the incident so the resolved message is retried
            actions.push(`resolved:${kind}`);
          }
          delete state.incidents[kind];
        }
      }
    }

    async function writeNotice() {
      /** @type {string[]} */
      const lines = [];
      const li = active.get('login-required') ?? (state.incidents['login-required'] && !evaluated.has('login-required') ? state.incidents['login-required'] : undefined);
      if (li) lines.push(`Your Claude login needs attention: ${li.detail}.`, `Run claude and use /login, signing in as ${rosterEmail}.`);
      const ds = active.get('deadline-soon');
      if (ds) lines.push(`Heads up: ${ds.detail}. Log in again (claude, then /login) before then.`);
      const im = active.get('identity-mismatch');
      if (im) lines.push(`Identity problem: ${im.detail}. Log out and log in as ${rosterEmail}.`);
      for (const o of overrides) lines.push(`Note: ${o} is set and overrides your Claude login.`);
      if (lines.length) {
        await writeAtomic(paths.noticeFile, ['[claude-token-renew]', ...lines, ''].join('\n'), 0o600).catch((e) => log('warn', `cannot write notice: ${errMsg(e)}`));
      } else {
        await fsp.unlink(paths.noticeFile).catch(() => {});
      }
    }
  }
}

/** The agent must run as the owner of the home it works on (never root on a user's home). @param {string} home */
function checkOwner(home) {
  let st;
  try {
    st = fs.statSync(home);
  } catch (e) {
    throw new UsageError(`home ${home} is not accessible: ${errMsg(e)}`);
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  if (uid !== -1 && st.uid !== uid) throw new UsageError(`refusing to run as uid ${uid} on ${home} owned by uid ${st.uid}: run as that user`);
}

// ---------------------------------------------------------------------------------------
// status (no secrets, no writes)

/** @param {Record<string, string|boolean>} opts @returns {Promise<number>} */
async function cmdStatus(opts) {
  const cfg = loadConfig(String(opts.config));
  const user = String(opts.user || os.userInfo().username);
  const entry = loadUser(String(opts['users-file'] || cfg.usersFile), user);
  const paths = resolvePaths(opts, cfg, user);
  const now = opts.now ? Number(opts.now) : Date.now();
  const local = await readLocal(paths.credFile);
  const state = await loadState(paths);
  /** @type {Record<string, unknown>} */
  const s = {
    user,
    email: entry?.email ?? null,
    enabled: !!entry && (entry.state ?? 'active') === 'active' && entry.claudeTokenRenew !== false,
    credentialsFile: paths.credFile,
    local: local.kind === 'ok'
      ? {
          state: 'ok',
          fingerprint: sha256(local.oauth.refreshToken).slice(0, 12),
          accessTokenExpiresAt: iso(local.oauth.expiresAt),
          accessTokenExpired: local.oauth.expiresAt <= now,
          loginEndsAt: iso(local.oauth.refreshTokenExpiresAt),
          otherKeys: Object.keys(local.doc).filter((k) => k !== 'claudeAiOauth'),
        }
      : { state: local.kind, ...(local.kind === 'corrupt' ? { reason: local.reason } : {}) },
    incidents: state.incidents,
    backoff: state.backoff ? { failures: state.backoff.failures, until: iso(state.backoff.until), lastError: state.backoff.lastError } : null,
    identityVerified: state.verified ? { email: state.verified.email, at: state.verified.at } : null,
    lastSync: state.lastSync ? { fingerprint: state.lastSync.hash.slice(0, 12), version: state.lastSync.version, at: state.lastSync.at } : null,
    lastRun: state.lastRun,
    overrides: detectOverrides(paths.home, process.env),
  };
  if (!opts.offline) {
    try {
      const meta = await new Vault(cfg, user, paths, { readOnly: true }).readMeta();
      s.vault = meta
        ? {
            version: meta.version,
            deleted: meta.deleted,
            fingerprint: meta.hash ? meta.hash.slice(0, 12) : null,
            accessTokenExpiresAt: iso(meta.expiresAt),
            inSync: local.kind === 'ok' && meta.hash === sha256(local.oauth.refreshToken),
          }
        : { version: 0 };
    } catch (e) {
      s.vault = { error: errMsg(e) };
    }
  }
  if (opts.json) out(JSON.stringify(s, null, 2));
  else {
    for (const [k, v] of Object.entries(s)) out(`${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`);
  }
  return EXIT.OK;
}

// ---------------------------------------------------------------------------------------
// CLI

function usage() {
  return `usage: claude-token-renew <run|status> [options]
  run      one pass: sync with Vault, refresh if the access token expires soon, alert (for the timer)
  status   show the state without secrets and without changing anything
options:
  --config FILE            agent config (default /etc/workstations/claude-token-renew.json)
  --users-file FILE        users.json (default: config usersFile)
  --user NAME              the user (default: the current user)
  --home DIR               home directory (default: $HOME)
  --cred-file FILE         Claude credentials (default: $CLAUDE_CONFIG_DIR or ~/.claude, /.credentials.json)
  --vault-cred FILE        AppRole credential (default ~/.config/claude-token-renew/vault.json)
  --state-dir DIR          state dir (default ~/.local/state/claude-token-renew)
  --notice-file FILE       notice shown by start-claude.sh (default ~/.claude-token-renew.notice)
  --alert-socket PATH      the alert notifier's socket (default: config alertSocket, else /run/workstations/alert.sock; "" = no alerts)
  --offline                status: do not contact Vault
  --json                   status: JSON output
  --quiet                  run: only warnings and errors on stderr
  --now MS                 testing: pretend the time is MS (epoch ms) for token expiry decisions
exit codes: 0 ok, 1 internal error, 2 usage/config, 3 transient, 4 login required,
            5 identity mismatch, 6 Vault access denied`;
}

/** @param {string[]} argv */
function parseArgs(argv) {
  const flags = new Set(['offline', 'json', 'quiet', 'help']);
  const valued = new Set(['config', 'users-file', 'user', 'home', 'cred-file', 'vault-cred', 'state-dir', 'notice-file', 'alert-socket', 'now']);
  /** @type {Record<string, string|boolean>} */
  const opts = { config: '/etc/workstations/claude-token-renew.json' };
  /** @type {string[]} */
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (flags.has(name)) opts[name] = true;
      else if (valued.has(name)) {
        const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) throw new UsageError(`--${name} needs a value`);
        opts[name] = v;
      } else throw new UsageError(`unknown option --${name}`);
    } else rest.push(a);
  }
  return { cmd: rest[0], rest: rest.slice(1), opts };
}

/** @param {string[]} argv @returns {Promise<number>} */
export async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`${errMsg(e)}\n${usage()}\n`);
    return EXIT.USAGE;
  }
  const { cmd, rest, opts } = parsed;
  if (opts.help || cmd === 'help') {
    out(usage());
    return EXIT.OK;
  }
  if ((cmd !== 'run' && cmd !== 'status') || rest.length) {
    process.stderr.write(`${usage()}\n`);
    return EXIT.USAGE;
  }
  LOGCFG.quiet = !!opts.quiet;
  process.umask(0o077);
  try {
    return cmd === 'run' ? await cmdRun(opts) : await cmdStatus(opts);
  } catch (e) {
    if (e instanceof UsageError) {
      log('error', e.message);
      return EXIT.USAGE;
    }
    log('error', `unexpected: ${e instanceof Error ? e.stack || e.message : String(e)}`);
    return EXIT.ERROR;
  }
}

const isMain = (() => {
  try {
    return !!process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(new URL(import.meta.url).pathname);
  } catch {
    return false;
  }
})();
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(redact(`claude-token-renew: fatal: ${errMsg(e)}`) + '\n');
      process.exitCode = EXIT.ERROR;
    },
  );
}
