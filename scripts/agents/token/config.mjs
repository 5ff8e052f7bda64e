// @ts-check
/** claude-token-renew: its config file, the user's users.json entry, its paths. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readUsersIndex } from '../common/users.mjs';
import { DEFAULTS, UsageError, errMsg } from './core.mjs';

/** @typedef {import('../common/users.mjs').UserEntry} UserEntry */

/**
 * @typedef {{
 *   vaultAddr: string, kvMount: string, kvPrefix: string, approleMount: string,
 *   vaultNamespace: string, tokenUrl: string, profileUrl: string, clientId: string,
 *   refreshMarginSeconds: number, loginDeadlineWarnDays: number, httpTimeoutSeconds: number,
 *   lockWaitSeconds: number, backoffBaseSeconds: number, backoffMaxSeconds: number,
 *   tokenRequestEncoding: string, profileBeta: string, usersFile: string, apiUrl: string,
 *   checkModel: string, setupTokenWarnDays: number, setupTokenCheckHours: number, setupTokenLifetimeDays: number,
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
  for (const k of ['vaultAddr', 'tokenUrl', 'profileUrl', 'clientId', 'kvMount', 'kvPrefix', 'approleMount', 'apiUrl', 'checkModel']) {
    if (typeof cfg[k] !== 'string' || cfg[k] === '') throw new UsageError(`config ${file}: "${k}" must be a non-empty string`);
  }
  for (const k of ['vaultAddr', 'tokenUrl', 'profileUrl', 'apiUrl']) {
    try {
      const u = new URL(cfg[k]);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('not http(s)');
    } catch {
      throw new UsageError(`config ${file}: "${k}" must be an http(s) URL`);
    }
  }
  for (const k of ['refreshMarginSeconds', 'loginDeadlineWarnDays', 'httpTimeoutSeconds', 'lockWaitSeconds', 'backoffBaseSeconds', 'backoffMaxSeconds', 'setupTokenWarnDays', 'setupTokenCheckHours', 'setupTokenLifetimeDays']) {
    if (typeof cfg[k] !== 'number' || !Number.isFinite(cfg[k]) || cfg[k] < 0) throw new UsageError(`config ${file}: "${k}" must be a non-negative number`);
  }
  if (cfg.tokenRequestEncoding !== 'json' && cfg.tokenRequestEncoding !== 'form') throw new UsageError(`config ${file}: "tokenRequestEncoding" must be "json" or "form"`);
  if (typeof cfg.alertSocket !== 'string') throw new UsageError(`config ${file}: "alertSocket" must be a string (a socket path, or "" for no alerts)`);
  cfg.vaultAddr = cfg.vaultAddr.replace(/\/+$/, '');
  cfg.apiUrl = cfg.apiUrl.replace(/\/+$/, '');
  return cfg;
}


/**
 * The user's entry in users.json (../common/users.mjs: version and format checked), or null.
 * @param {string} file @param {string} name @returns {UserEntry|null}
 */
export function loadUser(file, name) {
  let doc;
  try {
    doc = readUsersIndex(file);
  } catch (e) {
    throw new UsageError(errMsg(e));
  }
  return doc.users.find((u) => u.name === name) ?? null;
}


/**
 * @typedef {{
 *   home: string, credFile: string, credDir: string, locks: string[], vaultCredFile: string,
 *   stateDir: string, stateFile: string, vaultTokenFile: string, noticeFile: string,
 *   alertSocket: string, tokenFile: string
 * }} Paths
 * @param {Record<string, string|boolean>} opts @param {Config} cfg @param {string} user
 * @returns {Paths}
 */
export function resolvePaths(opts, cfg, user) {
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
    // setup-token mode: the token every Claude start reads (/etc/profile.d/workstations-claude-token.sh)
    tokenFile: path.join(home, '.claude-oauth-token'),
  };
}

/** The agent must run as the owner of the home it works on (never root on a user's home). @param {string} home */
export function checkOwner(home) {
  let st;
  try {
    st = fs.statSync(home);
  } catch (e) {
    throw new UsageError(`home ${home} is not accessible: ${errMsg(e)}`);
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  if (uid !== -1 && st.uid !== uid) throw new UsageError(`refusing to run as uid ${uid} on ${home} owned by uid ${st.uid}: run as that user`);
}
