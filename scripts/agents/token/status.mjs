// @ts-check
/** claude-token-renew status: the state without secrets, changing nothing. */
import { EXIT, iso, errMsg, out, sha256 } from './core.mjs';
import { loadConfig, loadUser, resolvePaths } from './config.mjs';
import { readLocal } from './files.mjs';
import { detectOverrides } from './overrides.mjs';
import { loadState } from './state.mjs';
import { Vault } from './vault.mjs';
import os from 'node:os';

/** @param {Record<string, string|boolean>} opts @returns {Promise<number>} */
export async function cmdStatus(opts) {
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
    claudeLogin: entry?.claudeLogin ?? 'rotating',
    setupToken: state.setup
      ? { fingerprint: state.setup.hash.slice(0, 12), valid: state.setup.ok, checkedAt: state.setup.checkedAt, expiresAt: iso(state.setup.expiresAt ?? undefined), delivered: paths.tokenFile }
      : null,
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
