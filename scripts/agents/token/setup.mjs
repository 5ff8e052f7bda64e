// @ts-check
/**
 * claude-token-renew in setup-token mode (roster `claudeLogin: setup-token`; README "Claude
 * logins"). The user's long-lived token (`claude setup-token`, `sk-ant-oat01-…`, stored with
 * `claude-token-renew store-setup-token`) lives in the user's own Vault secret beside the
 * rotating login (fields setupToken, setupTokenExpiresAt, setupTokenStoredAt: every write is a
 * merge). Each run delivers it to ~/.claude-oauth-token (0600), which every Claude the user
 * starts reads as CLAUDE_CODE_OAUTH_TOKEN (/etc/profile.d/workstations-claude-token.sh), checks
 * it with the cheapest real request (one output token; `claude auth status` reports success
 * during a 401), and alerts once before it expires. It never refreshes anything: no two
 * processes can race for this login.
 */
import fsp from 'node:fs/promises';
import { CasConflict, VaultDenied, VaultUnavailable, errMsg, iso, log, remember, sha256 } from './core.mjs';
import { CODE } from './decide.mjs';
import { readNoFollow, writeAtomic } from './files.mjs';
import { httpJson } from './vault.mjs';

/** @typedef {import('./config.mjs').Config} Config @typedef {import('./vault.mjs').Vault} Vault */

/** What `claude setup-token` prints: the only shape stored or delivered. */
export const SETUP_TOKEN_RE = /^sk-ant-oat01-[A-Za-z0-9_-]{20,400}$/;
/** The login-required detail while no setup token is stored (a notice, no alert: nothing broke). */
export const NO_SETUP_TOKEN = 'no setup token stored';
/** The system prompt Anthropic expects with a Claude Code OAuth token. */
const CLAUDE_CODE_SYSTEM = "You are Claude Code, Anthropic's official CLI for Claude.";

/**
 * The cheapest real request that proves a setup token works: one output token of the check
 * model. 200 = valid; 401/403 = rejected (revoked, expired, no inference scope); anything else
 * (429, 5xx, 529, a timeout, a 400 for a model the account lacks) says nothing about the token.
 * @param {Config} cfg @param {string} token
 * @returns {Promise<{ok: true} | {ok: false, kind: 'rejected'|'transient', detail: string}>}
 */
export async function checkSetupToken(cfg, token) {
  remember(token);
  const body = { model: cfg.checkModel, max_tokens: 1, system: CLAUDE_CODE_SYSTEM, messages: [{ role: 'user', content: 'ping' }] };
  let r;
  try {
    r = await httpJson(
      `${cfg.apiUrl}/v1/messages`,
      {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'anthropic-version': '2023-06-01', 'anthropic-beta': cfg.profileBeta, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      },
      cfg.httpTimeoutSeconds * 1000,
    );
  } catch (e) {
    return { ok: false, kind: 'transient', detail: `the Messages API is unreachable: ${errMsg(e)}` };
  }
  if (r.status === 200) return { ok: true };
  const type = typeof r.json?.error?.type === 'string' ? ` ${r.json.error.type}` : '';
  const msg = typeof r.json?.error?.message === 'string' ? `: ${r.json.error.message.slice(0, 120)}` : '';
  if (r.status === 401 || r.status === 403) return { ok: false, kind: 'rejected', detail: `the setup token was rejected (${r.status}${type}${msg})` };
  if (r.status === 400 || r.status === 404) log('error', `the token check got ${r.status}${type}${msg}: is checkModel "${cfg.checkModel}" right?`);
  return { ok: false, kind: 'transient', detail: `the token check got ${r.status}${type}` };
}

/**
 * The setup token in the user's Vault secret (null: none stored).
 * @param {Vault} vault
 * @returns {Promise<{version: number, data: Record<string, unknown>, token: string|null, expiresAt: number|null}>}
 */
export async function readVaultSetup(vault) {
  const got = await vault.readData();
  const data = got?.data && typeof got.data === 'object' ? got.data : {};
  const t = typeof data.setupToken === 'string' && SETUP_TOKEN_RE.test(data.setupToken) ? data.setupToken : null;
  if (t) remember(t);
  const e = Number(data.setupTokenExpiresAt);
  return { version: got?.version ?? 0, data, token: t, expiresAt: t && Number.isFinite(e) && e > 0 ? e : null };
}

/**
 * Stores a setup token in the user's secret, merged (every other field kept), check-and-set.
 * @param {Vault} vault @param {string} token @param {number} expiresAt @returns {Promise<number>} the new version
 */
export async function storeVaultSetup(vault, token, expiresAt) {
  for (let i = 0; ; i++) {
    const cur = await readVaultSetup(vault);
    const data = { ...cur.data, setupToken: token, setupTokenExpiresAt: String(expiresAt), setupTokenStoredAt: new Date().toISOString() };
    try {
      return await vault.writeData(data, cur.version);
    } catch (e) {
      if (!(e instanceof CasConflict) || i >= 2) throw e;
    }
  }
}

/** The token file's text (null: none or not a token). @param {string} file */
export async function readTokenFile(file) {
  const r = await readNoFollow(file);
  if (r.kind !== 'ok') return null;
  const t = r.text.trim();
  if (!SETUP_TOKEN_RE.test(t)) return null;
  remember(t);
  return t;
}

/** Writes the token file when it differs (0600, atomic). @param {string} file @param {string} token @returns {Promise<boolean>} written */
export async function deliverToken(file, token) {
  if ((await readTokenFile(file)) === token) {
    const st = await fsp.lstat(file);
    if ((st.mode & 0o777) === 0o600) return false;
  }
  await writeAtomic(file, `${token}\n`, 0o600);
  return true;
}

/**
 * One setup-token run, in the Run it extends (run.mjs): raise() and the state, then the
 * shared incident settling, notice and state file. @param {import('./run.mjs').Run} run
 */
export async function setupPass(run) {
  const { cfg, paths, state } = run;
  /** @type {{token: string|null, expiresAt: number|null}} */
  let vault = { token: null, expiresAt: null };
  let vaultRead = false;
  try {
    vault = await readVaultSetup(run.vault);
    vaultRead = true;
    run.evaluated.add('vault-denied');
  } catch (e) {
    if (e instanceof VaultDenied || e instanceof VaultUnavailable) run.onVaultError(e);
    else throw e;
  }
  run.evaluated.add('identity-mismatch'); // the rotating login's check: nothing to compare here
  const local = await readTokenFile(paths.tokenFile);
  // Vault is the source; while it cannot be read, the delivered file stands.
  const token = vaultRead ? vault.token : local;
  const expiresAt = vaultRead ? vault.expiresAt : (state.setup?.expiresAt ?? null);
  if (!token) {
    if (vaultRead) run.raise('login-required', NO_SETUP_TOKEN, true);
    run.evaluated.add('deadline-soon');
    return;
  }
  if (token !== local) {
    try {
      await deliverToken(paths.tokenFile, token);
      run.actions.push('delivered-setup-token');
      log('info', `delivered the setup token to ${paths.tokenFile}`);
    } catch (e) {
      log('error', `cannot write ${paths.tokenFile}: ${errMsg(e)}`);
      run.codes.add(CODE.ERROR);
    }
  }
  const hash = sha256(token);
  const prev = state.setup && state.setup.hash === hash ? state.setup : null;
  const due = !prev || prev.ok === null || run.now - Date.parse(prev.checkedAt) >= cfg.setupTokenCheckHours * 3_600_000;
  /** @type {boolean|null} */
  let ok = prev ? prev.ok : null;
  let detail = prev?.detail ?? '';
  let checkedAt = prev?.checkedAt ?? new Date(run.now).toISOString();
  if (due) {
    const c = await checkSetupToken(cfg, token);
    run.actions.push(`checked-setup-token(${c.ok ? 'ok' : c.kind})`);
    if (c.ok || c.kind === 'rejected') {
      ok = c.ok;
      detail = c.ok ? '' : c.detail;
      checkedAt = new Date(run.now).toISOString();
    } else {
      log('warn', `${c.detail}; checked again on the next run`);
      run.codes.add(CODE.TRANSIENT);
    }
  }
  state.setup = { hash, ok, detail, checkedAt, expiresAt };
  if (ok === false) run.raise('login-required', detail);
  else if (ok === true) run.evaluated.add('login-required');
  expiryConditions(run, expiresAt, ok === false);
}

/**
 * Expired: login required. Within warnDays: deadline-soon, once per token (a new token with a
 * later date resolves it). @param {import('./run.mjs').Run} run @param {number|null} expiresAt @param {boolean} rejected
 */
function expiryConditions(run, expiresAt, rejected) {
  run.evaluated.add('deadline-soon');
  if (expiresAt === null) return;
  if (expiresAt <= run.now) {
    run.raise('login-required', `the setup token expired ${iso(expiresAt)}`);
    return;
  }
  const days = Math.ceil((expiresAt - run.now) / 86_400_000);
  if (!rejected && expiresAt - run.now <= run.cfg.setupTokenWarnDays * 86_400_000) run.raise('deadline-soon', `the setup token expires ${iso(expiresAt)} (in ${days} days)`);
}
