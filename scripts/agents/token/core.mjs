// @ts-check
/**
 * claude-token-renew: what every module shares: exit codes, defaults, secret hygiene (every
 * secret the process handles is registered and scrubbed from all output), the logger and
 * the errors. See ../claude-token-renew.mjs.
 */
import crypto from 'node:crypto';
import { createLogger } from '../common/log.mjs';
import { UsageError } from '../common/args.mjs';
import { USERS_FILE } from '../common/users.mjs';

export const EXIT = Object.freeze({
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  TRANSIENT: 3,
  LOGIN_REQUIRED: 4,
  IDENTITY_MISMATCH: 5,
  VAULT_DENIED: 6,
});

export const LOCK_STALE_MS = 60_000;
export const LOCK_HEARTBEAT_MS = 5_000;
export const MAX_FILE_BYTES = 1 << 20;
export const VAULT_TOKEN_MIN_LEFT_MS = 120_000;
/** How long to wait for the notifier's answer (it gives Slack 10 s; its unit RuntimeMaxSec=30s). */
export const ALERT_ANSWER_TIMEOUT_MS = 20_000;
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

export const DEFAULTS = Object.freeze({
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
  // setup-token mode (setup.mjs): the Messages API the token check calls, with this model
  apiUrl: 'https://api.anthropic.com',
  checkModel: 'claude-haiku-4-5',
  setupTokenWarnDays: 30,
  setupTokenCheckHours: 6,
  setupTokenLifetimeDays: 365,
  profileBeta: 'oauth-2025-04-20',
  usersFile: USERS_FILE,
  alertSocket: DEFAULT_ALERT_SOCKET,
  hostLabel: '',
});

// ---------------------------------------------------------------------------------------
// Secret hygiene: every secret the process handles is registered and scrubbed from output.

/** @type {Set<string>} */
export const SECRETS = new Set();
/** @param {unknown} s */
export function remember(s) {
  if (typeof s === 'string' && s.length >= 6) SECRETS.add(s);
}
/** @param {string} text */
export function redact(text) {
  let out = text;
  for (const s of SECRETS) if (out.includes(s)) out = out.split(s).join('[redacted]');
  return out.replace(/sk-ant-[A-Za-z0-9_-]{4,}/g, 'sk-ant-[redacted]');
}
/** LOGCFG.quiet: info lines are left out (--quiet) */
export const { log, cfg: LOGCFG } = createLogger({ name: 'claude-token-renew', redact });
/** @param {string} msg */
export function out(msg) {
  process.stdout.write(redact(msg) + '\n');
}
/** @param {string} s */
export function sha256(s) {
  return crypto.createHash('sha256').update(s, 'utf8').digest('hex');
}
/** @param {number|undefined|null} ms */
export function iso(ms) {
  return typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : 'unknown';
}
/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** @param {unknown} e */
export function errMsg(e) {
  if (e instanceof Error) {
    const cause = /** @type {any} */ (e).cause;
    const c = cause && (cause.code || cause.message);
    return c ? `${e.message} (${c})` : e.message;
  }
  return String(e);
}

export { UsageError };
export class VaultUnavailable extends Error {}
export class VaultDenied extends Error {}
export class CasConflict extends Error {}
export class LockBusy extends Error {}
