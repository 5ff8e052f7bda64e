// @ts-check
/**
 * claude-token-renew run: the executor. It takes the locks, performs what decide.mjs decides
 * (Vault, the credentials file, OAuth, the profile endpoint) and reports what it learnt
 * back, then settles the incidents (alerts), the notice file and the state file.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CasConflict, EXIT, LockBusy, UsageError, VaultDenied, VaultUnavailable, errMsg, iso, log, out, sha256 } from './core.mjs';
import { checkOwner, loadConfig, loadUser, resolvePaths } from './config.mjs';
import { CODE, deadlineCondition, decide, exitCode, incidentPlan, NEVER_LOGGED_IN } from './decide.mjs';
import { ensurePrivateDir, isValidOAuth, readLocal, writeAtomic } from './files.mjs';
import { acquireLocks } from './locks.mjs';
import { fetchProfile, oauthRefresh } from './oauth.mjs';
import { detectOverrides } from './overrides.mjs';
import { loadState, saveState } from './state.mjs';
import { sendAlert } from './alerts.mjs';
import { Vault, vaultCustomMeta, vaultPayload } from './vault.mjs';
import { NO_SETUP_TOKEN, setupPass } from './setup.mjs';

/**
 * @typedef {import('./config.mjs').Config} Config @typedef {import('./config.mjs').Paths} Paths
 * @typedef {import('./files.mjs').OAuth} OAuth @typedef {import('./files.mjs').Local} Local
 * @typedef {import('./state.mjs').State} State @typedef {import('./vault.mjs').VaultView} VaultView
 * @typedef {import('./decide.mjs').IncidentKind} IncidentKind @typedef {import('./decide.mjs').Login} Login
 * @typedef {import('./decide.mjs').LocalPass} LocalPass @typedef {import('./decide.mjs').VaultSide} VaultSide
 * @typedef {import('./decide.mjs').VaultCopy} VaultCopy @typedef {import('./decide.mjs').DecideConfig} DecideConfig
 * @typedef {{kind: IncidentKind, detail: string, quiet?: boolean}} Condition
 */

/** What decide sees of a login: hashes and times. @param {OAuth} o @returns {Login} */
export function loginOf(o) {
  return { refreshHash: sha256(o.refreshToken), accessHash: sha256(o.accessToken), expiresAt: o.expiresAt, refreshTokenExpiresAt: o.refreshTokenExpiresAt ?? null };
}
/** @param {Local} l @returns {LocalPass} */
function viewOf(l) {
  /** @type {LocalPass} */
  const v = { kind: l.kind, login: l.kind === 'ok' ? loginOf(l.oauth) : null };
  if (l.kind === 'corrupt') v.reason = l.reason;
  if (l.kind === 'unreadable') v.error = l.error;
  return v;
}

/**
 * @param {Record<string, string|boolean>} opts
 * @returns {Promise<number>}
 */
export async function cmdRun(opts) {
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
    const t0 = Date.now();
    const now = opts.now ? Number(opts.now) : t0;
    if (!Number.isFinite(now)) throw new UsageError('--now must be epoch milliseconds');
    const run = new Run(cfg, user, entry.email, paths, now, t0, await loadState(paths), entry.claudeLogin === 'setup-token' ? 'setup-token' : 'rotating');
    return await run.go();
  } finally {
    await runLock.release();
  }
}

/** One run, under the run lock: everything it knows and has done so far. */
export class Run {
  /**
   * @param {Config} cfg @param {string} user @param {string} rosterEmail @param {Paths} paths
   * @param {number} now the run's time (--now) @param {number} t0 the real time it started @param {State} state
   * @param {'rotating'|'setup-token'} mode the user's claudeLogin (README "Claude logins")
   */
  constructor(cfg, user, rosterEmail, paths, now, t0, state, mode = 'rotating') {
    this.mode = mode;
    this.cfg = cfg;
    this.user = user;
    this.rosterEmail = rosterEmail;
    this.paths = paths;
    this.now = now;
    this.t0 = t0;
    this.host = cfg.hostLabel || os.hostname();
    this.state = state;
    this.vault = new Vault(cfg, user, paths);
    /** @type {string[]} what the run did (logged, and kept in state.lastRun) */
    this.actions = [];
    /** @type {Set<string>} CODE values */
    this.codes = new Set();
    /** @type {Map<IncidentKind, Condition>} */
    this.active = new Map();
    /** @type {Set<IncidentKind>} the incidents whose condition this run evaluated */
    this.evaluated = new Set();
    /** @type {'ok'|'down'|'denied'} */
    this.vaultState = 'ok';
    /** @type {VaultView|null} */
    this.meta = null;
    /** @type {string[]} */
    this.overrides = [];
    /** @type {DecideConfig} */
    this.dcfg = {
      email: rosterEmail,
      credFile: paths.credFile,
      refreshMarginMs: cfg.refreshMarginSeconds * 1000,
      backoffBaseMs: cfg.backoffBaseSeconds * 1000,
      backoffMaxMs: cfg.backoffMaxSeconds * 1000,
      loginDeadlineWarnMs: cfg.loginDeadlineWarnDays * 86_400_000,
    };
  }

  /** The current time (--now plus the real time elapsed since the start). */
  clock() {
    return this.now + (Date.now() - this.t0);
  }

  /** @param {IncidentKind} kind @param {string} detail @param {boolean} [quiet] notice only, no alert */
  raise(kind, detail, quiet = false) {
    this.active.set(kind, { kind, detail, quiet });
    this.evaluated.add(kind);
  }

  /** @param {unknown} e */
  onVaultError(e) {
    if (e instanceof VaultDenied) {
      this.vaultState = 'denied';
      this.raise('vault-denied', e.message);
      log('error', `${e.message}; working from the local file only`);
    } else if (e instanceof VaultUnavailable) {
      this.vaultState = 'down';
      this.codes.add(CODE.TRANSIENT);
      log('warn', `${e.message}; working from the local file only`);
    } else throw e;
  }

  /**
   * Records a refresh-token hash the first time it is seen in the local file (oldest first).
   * A hash seen again (an old copy put back) keeps its old place, so it stays "older".
   * @param {string} h
   */
  seen(h) {
    const hist = this.state.history;
    if (hist.includes(h)) return;
    hist.push(h);
    // 256 rotations (about 3 a day) outlast a login's ~30-day life.
    if (hist.length > 256) hist.splice(0, hist.length - 256);
  }

  exitCode() {
    return exitCode(this.active, this.codes, EXIT);
  }

  /** @returns {Promise<number>} */
  async go() {
    const { paths } = this;
    this.overrides = detectOverrides(paths.home, process.env);
    for (const o of this.overrides) log('warn', `override: ${o} takes precedence over the Claude login`);
    if (this.mode === 'setup-token') await setupPass(this);
    else {
      // Back from setup-token mode: the long-lived token no longer goes to new Claude processes.
      if (await fsp.unlink(paths.tokenFile).then(() => true, () => false)) this.actions.push('removed-setup-token-file');
      await this.rotatingPass();
    }
    return this.finish();
  }

  /** The rotating login: sync with Vault, refresh when due, check the identity. */
  async rotatingPass() {
    const { paths, cfg } = this;
    try {
      this.meta = await this.vault.readMeta();
      this.evaluated.add('vault-denied');
    } catch (e) {
      this.onVaultError(e);
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
          this.codes.add(CODE.TRANSIENT);
          break;
        }
        throw e;
      }
      try {
        res = await this.lockedPass(lock);
      } finally {
        await lock.release();
      }
      finalOAuth = res.oauth;
      if (!res.push || !res.oauth || this.vaultState !== 'ok') break;
      try {
        await this.push(res.oauth);
        break;
      } catch (e) {
        if (e instanceof CasConflict) {
          log('warn', `${e.message}; re-reading Vault and the local file`);
          this.actions.push('cas-conflict');
          if (pass === 3) {
            this.codes.add(CODE.TRANSIENT);
            break;
          }
          try {
            this.meta = await this.vault.readMeta();
          } catch (e2) {
            this.onVaultError(e2);
            break;
          }
          continue;
        }
        this.onVaultError(e);
        break;
      }
    }

    // Login deadline warning, evaluated on the final local state.
    if (finalOAuth && !this.active.has('login-required') && !this.active.has('identity-mismatch')) {
      this.evaluated.add('deadline-soon');
      const c = deadlineCondition(finalOAuth, this.now, this.dcfg);
      if (c) this.raise(c.kind, c.detail);
    }
    if (this.active.has('login-required')) this.evaluated.add('deadline-soon');
  }

  /** @returns {Promise<number>} */
  async finish() {
    const { paths, state } = this;
    await this.settleIncidents();
    await this.writeNotice();
    state.lastRun = { at: new Date(this.now).toISOString(), exit: this.exitCode(), actions: this.actions };
    await saveState(paths, state).catch((e) => log('warn', `cannot save state: ${errMsg(e)}`));
    out(`claude-token-renew: ${this.user}: ${this.actions.length ? this.actions.join(', ') : 'nothing to do'}; exit ${this.exitCode()}`);
    return this.exitCode();
  }

  /**
   * The part that runs under Claude's locks: decide, do, report back, until the pass ends.
   * @param {{stillHeld(): Promise<boolean>}} lock
   * @returns {Promise<{oauth: OAuth|null, push: boolean}>}
   */
  async lockedPass(lock) {
    const { paths, state } = this;
    let cur = await readLocal(paths.credFile);
    let local = viewOf(cur);
    /** @type {VaultCopy|undefined} */
    let copy;
    /** @type {{version: number, data: any}|null} */
    let got = null;
    /** @type {{ok: true, oauth: Partial<OAuth>}|null} */
    let refreshed = null;
    for (let step = 0; step < 64; step++) {
      /** @type {VaultSide} */
      const vault = { status: this.vaultState, meta: this.meta, ...(copy ? { copy } : {}) };
      for (const a of decide(local, vault, state, this.now, this.dcfg)) {
        switch (a.type) {
          case 'log': log(a.level, a.msg); break;
          case 'code': this.codes.add(a.code); break;
          case 'raise': this.raise(a.kind, a.detail, a.quiet); break;
          case 'evaluated': this.evaluated.add(a.kind); break;
          case 'record': this.actions.push(a.action); break;
          case 'seen': this.seen(a.hash); break;
          case 'clear-backoff': state.backoff = null; break;
          case 'set-backoff': state.backoff = a.backoff; break;
          case 'mark-dead': state.deadRefreshHash = a.hash; break;
          case 'set-verified': state.verified = a.verified; break;
          case 'set-mismatch': state.mismatch = a.mismatch; break;
          case 'read-vault-copy':
            try {
              got = await this.vault.readData();
              const o = got && got.data && got.data.claudeAiOauth;
              copy = { login: isValidOAuth(o) ? loginOf(o) : null, email: got && typeof got.data?.email === 'string' ? got.data.email : null, version: got?.version ?? 0 };
            } catch (e) {
              this.onVaultError(e);
              copy = { error: true };
            }
            break;
          case 'restore': {
            const o = /** @type {OAuth} */ (got?.data.claudeAiOauth);
            /** @type {Record<string, unknown>} */
            const doc = cur.kind === 'ok' || cur.kind === 'nologin' ? cur.doc : {};
            doc.claudeAiOauth = o;
            await writeAtomic(paths.credFile, JSON.stringify(doc), 0o600);
            this.actions.push(`restored-from-vault(v${got?.version})`);
            log('warn', `restored ${paths.credFile} from Vault version ${got?.version} (${a.why})`);
            state.lastSync = { hash: sha256(o.refreshToken), version: got?.version ?? 0, at: new Date().toISOString() };
            cur = { kind: 'ok', doc, oauth: o };
            local = { ...viewOf(cur), synced: { push: false }, restored: true };
            break;
          }
          case 'synced': local.synced = { push: a.push }; break;
          case 'check-identity':
            if (cur.kind === 'ok') local.profile = await fetchProfile(this.cfg, cur.oauth.accessToken);
            break;
          case 'identity': local.identity = a.identity; break;
          case 'refresh': {
            if (cur.kind !== 'ok') break;
            const r = await oauthRefresh(this.cfg, cur.oauth.refreshToken, () => this.clock());
            if (r.ok) {
              refreshed = r;
              local.refresh = { ok: true };
            } else local.refresh = { ok: false, kind: r.kind, detail: r.detail, retryAfterMs: r.retryAfterMs, at: this.clock(), jitter: Math.random() };
            break;
          }
          case 'apply-refresh': {
            if (cur.kind !== 'ok' || !refreshed) break;
            /** @type {OAuth} */
            const next = { ...cur.oauth, ...refreshed.oauth };
            if (!(await lock.stillHeld())) log('warn', 'a credential lock was lost during the refresh; writing the new token at once');
            const doc = cur.doc;
            doc.claudeAiOauth = next;
            let writeFailed = false;
            try {
              await writeAtomic(paths.credFile, JSON.stringify(doc), 0o600);
            } catch (e) {
              log('error', `cannot write ${paths.credFile}: ${errMsg(e)}; pushing the new token to Vault so it is not lost`);
              this.codes.add(CODE.ERROR);
              writeFailed = true;
            }
            cur = { kind: 'ok', doc, oauth: next };
            state.backoff = null;
            this.actions.push('refreshed');
            log('info', `refreshed the access token; it now expires ${iso(next.expiresAt)}`);
            local = { ...viewOf(cur), synced: local.synced, refreshed: { wasVerified: a.wasVerified, writeFailed } };
            break;
          }
          case 'end':
            return { oauth: a.login && cur.kind === 'ok' ? cur.oauth : null, push: a.push };
        }
      }
    }
    throw new Error('internal error: the locked pass did not end');
  }

  /** @param {OAuth} o */
  async push(o) {
    const cas = this.meta ? this.meta.version : 0;
    // A merge: the setup token and anything else at the path stay (KV v2 writes replace).
    const cur = cas ? await this.vault.readData() : null;
    if (cur && cur.version !== cas) throw new CasConflict(`Vault is at version ${cur.version}, not ${cas}`);
    const keep = cur && cur.data && typeof cur.data === 'object' ? cur.data : {};
    const version = await this.vault.writeData({ ...keep, ...vaultPayload(o, this.rosterEmail) }, cas);
    await this.vault.writeMeta(vaultCustomMeta(o, this.host));
    this.meta = { version, deleted: false, hash: sha256(o.refreshToken), expiresAt: o.expiresAt, refreshTokenExpiresAt: o.refreshTokenExpiresAt ?? null };
    this.state.lastSync = { hash: this.meta.hash ?? '', version, at: new Date().toISOString() };
    this.actions.push(`pushed-to-vault(v${version})`);
    log('info', `pushed the current login to Vault (version ${version})`);
  }

  async settleIncidents() {
    const { state, user, rosterEmail } = this;
    const who = `${user} (${rosterEmail}) on ${this.host}`;
    /** @type {Record<IncidentKind, string>} */
    const titles = {
      'login-required': `:rotating_light: Claude login required for ${who}`,
      'deadline-soon': `:hourglass: Claude login for ${who} ends soon`,
      'identity-mismatch': `:no_entry: Claude identity mismatch for ${who}`,
      'vault-denied': `:lock: claude-token-renew for ${who} cannot use Vault`,
    };
    for (const p of incidentPlan(this.active, this.evaluated, state.incidents)) {
      const kind = p.kind;
      const inc = state.incidents[kind];
      const cond = this.active.get(kind);
      if (p.do === 'raise' && cond) {
        const cur = inc ?? { since: new Date(this.now).toISOString(), alerted: false, detail: cond.detail };
        cur.detail = cond.detail;
        if (!cur.alerted && cond.quiet) this.actions.push(`notice-only:${kind}`);
        else if (!cur.alerted) {
          const hint = kind === 'identity-mismatch' ? ` ${user} must log in again with ${rosterEmail}.`
            : kind === 'vault-denied' ? ' Check the AppRole credential and policy.'
            : this.mode === 'setup-token' ? ` ${user} must run \`claude setup-token\` (as ${rosterEmail}), then \`claude-token-renew store-setup-token\` and paste it.`
            : ` ${user} must start claude and run /login (as ${rosterEmail}).`;
          cur.alerted = await sendAlert(this.paths.alertSocket, `${titles[kind]}: ${cond.detail}.${hint}`);
          if (cur.alerted) this.actions.push(`alerted:${kind}`);
        }
        state.incidents[kind] = cur;
      } else if (p.do === 'resolve' && inc) {
        const ok = await sendAlert(this.paths.alertSocket, `:white_check_mark: resolved: ${titles[kind].replace(/^:[a-z_]+: /, '')} (since ${inc.since}) is resolved.`);
        if (!ok) continue; // keep the incident so the resolved message is retried
        this.actions.push(`resolved:${kind}`);
        delete state.incidents[kind];
      } else if (p.do === 'drop') {
        delete state.incidents[kind];
      }
    }
  }

  async writeNotice() {
    const { state, rosterEmail, active, evaluated } = this;
    /** @type {string[]} */
    const lines = [];
    const li = active.get('login-required') ?? (state.incidents['login-required'] && !evaluated.has('login-required') ? state.incidents['login-required'] : undefined);
    const store = `Run \`claude setup-token\` (as ${rosterEmail}), then \`claude-token-renew store-setup-token\` and paste the token.`;
    if (li && this.mode === 'setup-token') lines.push(li.detail === NO_SETUP_TOKEN ? 'Your Claude login here is a long-lived token, and none is stored yet.' : `Your Claude login needs attention: ${li.detail}.`, store);
    else if (li && li.detail === NEVER_LOGGED_IN) lines.push(`You have not logged in to Claude on this host yet.`, `Run claude and use /login, signing in as ${rosterEmail}.`);
    else if (li) lines.push(`Your Claude login needs attention: ${li.detail}.`, `Run claude and use /login, signing in as ${rosterEmail}.`);
    const ds = active.get('deadline-soon');
    if (ds) lines.push(this.mode === 'setup-token' ? `Heads up: ${ds.detail}. ${store}` : `Heads up: ${ds.detail}. Log in again (claude, then /login) before then.`);
    const im = active.get('identity-mismatch');
    if (im) lines.push(`Identity problem: ${im.detail}. Log out and log in as ${rosterEmail}.`);
    for (const o of this.overrides) lines.push(`Note: ${o} is set and overrides your Claude login.`);
    if (lines.length) {
      await writeAtomic(this.paths.noticeFile, ['[claude-token-renew]', ...lines, ''].join('\n'), 0o600).catch((e) => log('warn', `cannot write notice: ${errMsg(e)}`));
    } else {
      await fsp.unlink(this.paths.noticeFile).catch(() => {});
    }
  }
}
