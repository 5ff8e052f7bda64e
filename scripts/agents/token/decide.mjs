// @ts-check
/**
 * claude-token-renew: what one run decides, without I/O. It mirrors the table "What one run
 * decides" in docs/CONTRACTS.md; the executor (run.mjs) performs the actions.
 *
 * decide(local, vault, state, now, config) is called again and again during one locked
 * pass: every call returns the actions to take now, the last of which is a yield point
 * (YIELDS): something the executor must do before the next decision (read Vault's copy,
 * restore it, check the identity, refresh the token, apply the refresh), a recorded outcome
 * (synced, identity) or the end of the pass. The executor records what it learnt in `local`
 * and `vault` and calls decide again. decide sees only hashes, times and kinds, never a token.
 *
 * Rows of the table and where they are decided:
 *   Vault unreachable / denied          -> syncStep: nothing restored; renewal: no refresh
 *   local missing / corrupt             -> syncStep: restore Vault's copy if restorable
 *   hashes equal                        -> syncStep: in sync
 *   Vault strictly newer                -> syncStep + restoreVerdict (vaultIsNewer)
 *   local dead, Vault different         -> syncStep: restore
 *   local newer / Vault empty           -> syncStep: push (after the identity check)
 *   invalid_grant seen / deadline past  -> renewal: login-required, never presented
 *   expires within the margin           -> renewal: refresh (Vault up, no backoff)
 *   refresh transient / 4xx             -> refreshOutcome: backoff (nextBackoff), exit 3
 *   refresh invalid_grant               -> refreshOutcome: dead hash, login-required
 *   profile email != roster             -> identityVerdict / profileVerdict: identity-mismatch
 *   deadline within the warning         -> deadlineCondition
 *   CAS conflict                        -> the executor redoes the pass (max 3)
 *   incident gone                       -> incidentPlan: "resolved" once; SSO replaced: silent
 */

/** A decision's `code`: the run's exit codes it contributes (the executor maps them). */
export const CODE = Object.freeze({ ERROR: 'error', TRANSIENT: 'transient' });

/** The actions after which decide must be called again (or, `end`, not). */
export const YIELDS = Object.freeze(['read-vault-copy', 'restore', 'synced', 'check-identity', 'identity', 'refresh', 'apply-refresh', 'end']);

/**
 * @typedef {'login-required'|'deadline-soon'|'identity-mismatch'|'vault-denied'} IncidentKind
 * @typedef {{refreshHash: string, accessHash: string, expiresAt: number, refreshTokenExpiresAt?: number|null}} Login
 *   a login as decide sees it: sha256 of its tokens and its times (epoch ms)
 * @typedef {{ok: true, email: string} | {ok: false, kind: 'unauthorized'|'transient', detail: string}} ProfileAnswer
 * @typedef {{ok: true} | {ok: false, kind: 'invalid_grant'|'transient'|'rejected', detail: string,
 *   retryAfterMs?: number, at: number, jitter: number}} RefreshAnswer
 *   at: the time of the answer; jitter: a random number in [0, 1) for the backoff
 * @typedef {{
 *   kind: 'ok'|'nologin'|'missing'|'symlink'|'corrupt'|'unreadable', reason?: string, error?: string,
 *   login: Login|null,
 *   synced?: {push: boolean},
 *   restored?: boolean,
 *   profile?: ProfileAnswer,
 *   identity?: 'ok'|'mismatch'|'unknown'|'rejected',
 *   refresh?: RefreshAnswer,
 *   refreshed?: {wasVerified: boolean, writeFailed: boolean}
 * }} LocalPass
 *   the local file and what this pass learnt about it: synced (the sync step is decided; push
 *   = the login is to be pushed), restored (it came from Vault), profile (the identity
 *   endpoint's answer for its access token), identity (the verdict), refresh (the answer to
 *   our refresh of it), refreshed (it is the result of our refresh)
 * @typedef {{hash: string|null, expiresAt: number|null, deleted: boolean, version: number}} VaultMeta
 * @typedef {{error: true} | {error?: false, login: Login|null, email: string|null, version: number}} VaultCopy
 *   the data read for a restore; login null: missing or incomplete
 * @typedef {{status: 'ok'|'down'|'denied', meta: VaultMeta|null, copy?: VaultCopy}} VaultSide
 * @typedef {{refreshHash: string, accessHash: string, email: string, at: string}} Verified
 * @typedef {{
 *   history: string[], deadRefreshHash: string|null,
 *   backoff: {failures: number, until: number, lastError: string} | null,
 *   verified: Verified|null, mismatch: {refreshHash: string, accessHash: string, email: string} | null
 * }} StateView
 * @typedef {{email: string, credFile: string, refreshMarginMs: number, backoffBaseMs: number,
 *   backoffMaxMs: number, loginDeadlineWarnMs: number}} DecideConfig
 *   email: the roster's; credFile: the credentials file (named in log lines)
 *
 * @typedef {{type: 'log', level: 'info'|'warn'|'error', msg: string}
 *   | {type: 'code', code: 'error'|'transient'}
 *   | {type: 'raise', kind: IncidentKind, detail: string, quiet?: boolean}
 *   | {type: 'evaluated', kind: IncidentKind}
 *   | {type: 'record', action: string}
 *   | {type: 'seen', hash: string}
 *   | {type: 'clear-backoff'}
 *   | {type: 'set-backoff', backoff: {failures: number, until: number, lastError: string}}
 *   | {type: 'mark-dead', hash: string}
 *   | {type: 'set-verified', verified: Verified}
 *   | {type: 'set-mismatch', mismatch: {refreshHash: string, accessHash: string, email: string} | null}
 *   | {type: 'read-vault-copy'}
 *   | {type: 'restore', why: string}
 *   | {type: 'synced', push: boolean}
 *   | {type: 'check-identity'}
 *   | {type: 'identity', identity: 'ok'|'mismatch'|'unknown'|'rejected'}
 *   | {type: 'refresh'}
 *   | {type: 'apply-refresh', wasVerified: boolean}
 *   | {type: 'end', push: boolean, login: boolean}} Action
 *   end: login = a usable local login remains (the deadline warning looks at it)
 */

/** @param {number|undefined|null} ms */
function iso(ms) {
  return typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : 'unknown';
}
/** @param {string} a @param {string} b */
const sameEmail = (a, b) => a.toLowerCase() === b.toLowerCase();

/**
 * Is a Vault copy (hash, expiresAt) strictly newer than the local login? The order in which
 * this host first saw the hashes in the local file decides (immune to clock steps):
 *  - both seen: the later one is newer (an old copy put back is older than Vault's);
 *  - Vault's seen, local's not: local is a rotation or login not seen yet, so it is newer;
 *  - otherwise (state lost, or a copy written elsewhere): compare expiresAt, which Claude
 *    and the agent both compute from the time of the refresh answer.
 * @param {readonly string[]} history @param {string|null} vHash @param {number|null} vExpiresAt
 * @param {{refreshHash: string, expiresAt: number}} local
 */
export function vaultIsNewer(history, vHash, vExpiresAt, local) {
  if (vHash === local.refreshHash) return false;
  const iV = vHash ? history.indexOf(vHash) : -1;
  const iL = history.indexOf(local.refreshHash);
  if (iV !== -1 && iL !== -1) return iV > iL;
  if (iV !== -1) return false;
  return vExpiresAt !== null && vExpiresAt > local.expiresAt;
}

/** A login that will never refresh again: invalid_grant seen, or past its deadline. @param {Login} l @param {StateView} state @param {number} now */
export function isDead(l, state, now) {
  return l.refreshHash === state.deadRefreshHash || (typeof l.refreshTokenExpiresAt === 'number' && l.refreshTokenExpiresAt <= now);
}

/**
 * Whether Vault's copy may replace the local file.
 * @param {VaultCopy} copy @param {Login|null} mustBeNewerThan a valid local login the copy must be newer than
 * @param {StateView} state @param {number} now @param {string} email the roster's
 * @returns {{restore: true} | {restore: false, log?: {level: 'info'|'warn', msg: string}}}
 */
export function restoreVerdict(copy, mustBeNewerThan, state, now, email) {
  if (copy.error) return { restore: false }; // the read failed: the Vault error is handled
  const l = copy.login;
  if (!l) return { restore: false, log: { level: 'warn', msg: 'the Vault copy is missing or incomplete; not restoring' } };
  if (mustBeNewerThan !== null && !vaultIsNewer(state.history, l.refreshHash, l.expiresAt, mustBeNewerThan)) {
    return { restore: false, log: { level: 'info', msg: 'the Vault copy is not newer than the local file; keeping local' } };
  }
  if (isDead(l, state, now)) return { restore: false, log: { level: 'warn', msg: 'the Vault copy is a dead login; not restoring' } };
  if (typeof copy.email === 'string' && !sameEmail(copy.email, email)) {
    return { restore: false, log: { level: 'warn', msg: `the Vault copy belongs to ${copy.email}, not ${email}; not restoring` } };
  }
  return { restore: true };
}

/**
 * Sync with Vault (before any renewal): restore, push or nothing.
 * @param {LocalPass} local @param {VaultSide} vault @param {StateView} state @param {number} now @param {DecideConfig} config
 * @returns {Action[]}
 */
function syncStep(local, vault, state, now, config) {
  /**
   * Restore Vault's copy if it is restorable; `keep` = the push flag when it is not.
   * @param {Login|null} mustBeNewerThan @param {string} why @param {boolean} keep @param {Action[]} before
   * @returns {Action[]}
   */
  const tryRestore = (mustBeNewerThan, why, keep, before = []) => {
    if (!vault.copy) return [...before, { type: 'read-vault-copy' }];
    const v = restoreVerdict(vault.copy, mustBeNewerThan, state, now, config.email);
    if (v.restore) return [{ type: 'restore', why }];
    return [...(v.log ? [/** @type {Action} */ ({ type: 'log', ...v.log })] : []), { type: 'synced', push: keep }];
  };
  const meta = vault.meta;
  if (vault.status === 'ok' && meta && !meta.deleted) {
    if (local.kind !== 'ok' || !local.login) {
      const desc = local.kind === 'corrupt' ? `corrupt (${local.reason})` : local.kind;
      return tryRestore(null, `local was ${local.kind}`, false, [{ type: 'log', level: 'warn', msg: `local credentials are ${desc}; trying Vault` }]);
    }
    const l = local.login;
    if (meta.hash !== l.refreshHash && isDead(l, state, now)) {
      // A dead local login (invalid_grant or past its deadline): a live Vault copy is better.
      return tryRestore(null, 'the local login is dead', false);
    }
    if (meta.hash !== l.refreshHash) {
      if (meta.hash === null || meta.expiresAt === null || vaultIsNewer(state.history, meta.hash, meta.expiresAt, l)) {
        return tryRestore(l, 'the Vault copy is newer', true); // re-checked on the data
      }
      return [{ type: 'synced', push: true }]; // local is newer (Claude or a new login rotated it)
    }
    return [{ type: 'synced', push: false }]; // in sync
  }
  // nothing usable in Vault yet: push; Vault down or denied: touch nothing local
  return [{ type: 'synced', push: vault.status === 'ok' && local.kind === 'ok' }];
}

/**
 * The identity of the current access token from what is known already, or ask for the
 * profile endpoint (check-identity), or judge its answer (profileVerdict).
 * @param {Login} l @param {LocalPass} local @param {StateView} state @param {number} now @param {DecideConfig} config
 * @returns {Action[]}
 */
export function identityStep(l, local, state, now, config) {
  const email = config.email;
  const v = state.verified;
  if (v && (v.accessHash === l.accessHash || v.refreshHash === l.refreshHash) && sameEmail(v.email, email)) {
    return [{ type: 'evaluated', kind: 'identity-mismatch' }, { type: 'identity', identity: 'ok' }];
  }
  const mm = state.mismatch;
  if (mm && (mm.accessHash === l.accessHash || mm.refreshHash === l.refreshHash)) {
    return [
      { type: 'log', level: 'error', msg: `identity mismatch (login unchanged): token belongs to ${mm.email}, roster says ${email}` },
      { type: 'raise', kind: 'identity-mismatch', detail: mismatchDetail(mm.email, email) },
      { type: 'identity', identity: 'mismatch' },
    ];
  }
  if (l.expiresAt <= now + 30_000) return [{ type: 'identity', identity: 'unknown' }];
  if (!local.profile) return [{ type: 'check-identity' }];
  return profileVerdict(local.profile, l, now, email);
}

/** @param {string} got @param {string} want */
const mismatchDetail = (got, want) => `the Claude login on this host belongs to ${got}, not ${want}; refusing to renew or store it`;

/**
 * The identity verdict from the profile endpoint's answer.
 * @param {ProfileAnswer} p @param {Login} l @param {number} now @param {string} email
 * @returns {Action[]}
 */
export function profileVerdict(p, l, now, email) {
  if (!p.ok) {
    return [{ type: 'log', level: 'warn', msg: `cannot verify identity: ${p.detail}` }, { type: 'identity', identity: p.kind === 'unauthorized' ? 'rejected' : 'unknown' }];
  }
  if (!sameEmail(p.email, email)) {
    return [
      { type: 'evaluated', kind: 'identity-mismatch' },
      { type: 'set-mismatch', mismatch: { refreshHash: l.refreshHash, accessHash: l.accessHash, email: p.email } },
      { type: 'raise', kind: 'identity-mismatch', detail: mismatchDetail(p.email, email) },
      { type: 'log', level: 'error', msg: `identity mismatch: token belongs to ${p.email}, roster says ${email}` },
      { type: 'identity', identity: 'mismatch' },
    ];
  }
  return [
    { type: 'evaluated', kind: 'identity-mismatch' },
    { type: 'set-mismatch', mismatch: null },
    { type: 'set-verified', verified: { refreshHash: l.refreshHash, accessHash: l.accessHash, email: p.email, at: new Date(now).toISOString() } },
    { type: 'identity', identity: 'ok' },
  ];
}

/**
 * The wait after a failed refresh: backoffBase·2^(n-1), ±20 %, at least Retry-After, at most
 * backoffMax (before the jitter).
 * @param {number} failures n, this one included @param {DecideConfig} config @param {number} jitter in [0, 1)
 * @param {number} [retryAfterMs]
 */
export function backoffMs(failures, config, jitter, retryAfterMs) {
  const base = Math.min(config.backoffBaseMs * 2 ** (failures - 1), config.backoffMaxMs);
  return Math.max(base * (0.8 + jitter * 0.4), retryAfterMs ?? 0);
}

/**
 * What the answer to our refresh means.
 * @param {RefreshAnswer} r @param {Login} l @param {StateView} state @param {DecideConfig} config
 * @returns {Action[]}
 */
function refreshOutcome(r, l, state, config) {
  if (r.ok) return [];
  if (r.kind === 'invalid_grant') {
    return [
      { type: 'mark-dead', hash: l.refreshHash },
      { type: 'clear-backoff' },
      { type: 'raise', kind: 'login-required', detail: 'the refresh token was rejected (invalid_grant); an interactive login is needed' },
      { type: 'record', action: 'invalid_grant' },
      { type: 'end', push: false, login: true },
    ];
  }
  const failures = (state.backoff?.failures ?? 0) + 1;
  const until = r.at + backoffMs(failures, config, r.jitter, r.retryAfterMs);
  return [
    { type: 'set-backoff', backoff: { failures, until, lastError: r.detail } },
    { type: 'code', code: CODE.TRANSIENT },
    { type: 'record', action: 'refresh-deferred' },
    { type: 'log', level: 'warn', msg: `token refresh failed: ${r.detail}; retrying after ${iso(until)}` },
  ];
}

/**
 * The next actions of one locked pass (see the header).
 * @param {LocalPass} local @param {VaultSide} vault @param {StateView} state @param {number} now
 * @param {DecideConfig} config
 * @returns {Action[]}
 */
export function decide(local, vault, state, now, config) {
  if (local.kind === 'unreadable') {
    return [
      { type: 'log', level: 'error', msg: `cannot read ${config.credFile}: ${local.error}; leaving it alone` },
      { type: 'code', code: CODE.ERROR },
      { type: 'end', push: false, login: false },
    ];
  }
  // 1. Restore from Vault only if local is missing/corrupt/dead or Vault is strictly newer.
  if (!local.synced) return syncStep(local, vault, state, now, config);
  const l = local.login;
  if (local.kind !== 'ok' || !l) {
    // Never logged in: no login here, none in Vault, none ever seen by this agent. Quiet: the
    // user's notice says what to do, no alert is posted (the team's lesson 6: a user who never
    // logged in alerted every 6 hours, 48 posts a week nobody could act on).
    const never = vault.status === 'ok' && !vault.meta && state.history.length === 0 && (local.kind === 'missing' || local.kind === 'nologin');
    return [
      vault.status === 'ok'
        ? never
          ? { type: 'raise', kind: 'login-required', detail: NEVER_LOGGED_IN, quiet: true }
          : { type: 'raise', kind: 'login-required', detail: 'no usable Claude credentials locally or in Vault' }
        : { type: 'log', level: 'warn', msg: `local credentials are ${local.kind} and Vault is ${vault.status}; nothing to restore from` },
      { type: 'end', push: false, login: false },
    ];
  }
  /** @type {Action[]} */
  const out = [{ type: 'seen', hash: l.refreshHash }];

  // 2. Dead login? Never present a refresh token that already got invalid_grant.
  if (!local.refreshed) {
    if (state.deadRefreshHash === l.refreshHash) {
      return [...out, { type: 'raise', kind: 'login-required', detail: 'the refresh token was rejected (invalid_grant); an interactive login is needed' }, { type: 'end', push: false, login: true }];
    }
    const deadline = l.refreshTokenExpiresAt;
    if (typeof deadline === 'number' && deadline <= now) {
      return [...out, { type: 'raise', kind: 'login-required', detail: `the Claude login ended at ${iso(deadline)}` }, { type: 'end', push: false, login: true }];
    }
  }

  // 3. The identity of the current access token, if it can be checked now.
  if (!local.identity) return [...out, ...identityStep(l, local, state, now, config)];
  let identity = local.identity;
  if (identity === 'mismatch') return [...out, { type: 'end', push: false, login: true }];

  // 4. Refresh only when the access token expires soon (or the profile endpoint rejected it).
  if (!local.refreshed) {
    const nearExpiry = l.expiresAt - now < config.refreshMarginMs;
    if (!nearExpiry && identity !== 'rejected') out.push({ type: 'clear-backoff' });
    if (nearExpiry || identity === 'rejected') {
      if (vault.status !== 'ok') {
        out.push({ type: 'log', level: 'info', msg: `access token expires ${iso(l.expiresAt)} but Vault is ${vault.status}; not rotating (Claude refreshes on its own)` });
      } else if (state.backoff && state.backoff.until > now) {
        out.push({ type: 'log', level: 'info', msg: `backing off token refresh until ${iso(state.backoff.until)} after: ${state.backoff.lastError}` });
      } else if (!local.refresh) {
        return [...out, { type: 'refresh' }];
      } else if (local.refresh.ok) {
        return [...out, { type: 'apply-refresh', wasVerified: identity === 'ok' }];
      } else {
        const r = refreshOutcome(local.refresh, l, state, config);
        if (r.some((a) => a.type === 'end')) return [...out, ...r];
        out.push(...r);
      }
    }
  } else if (identity !== 'ok' && local.refreshed.wasVerified && state.verified) {
    // a refresh of a verified login is the same identity, also when the profile endpoint is
    // unavailable right now
    out.push({ type: 'set-verified', verified: { ...state.verified, refreshHash: l.refreshHash, accessHash: l.accessHash } });
    identity = 'ok';
  }

  // 5. A fresh, usable login clears a login-required incident; push only a verified login.
  out.push({ type: 'evaluated', kind: 'login-required' });
  let push = !!local.synced.push || !!local.refreshed;
  if (push && identity !== 'ok' && !local.refreshed?.writeFailed) {
    out.push({ type: 'log', level: 'warn', msg: 'identity not verified yet; Vault push deferred to the next run' }, { type: 'code', code: CODE.TRANSIENT });
    push = false;
  }
  out.push({ type: 'end', push, login: true });
  return out;
}

/**
 * The login-deadline warning, on the final local login (when no login or identity incident
 * is active).
 * @param {{refreshTokenExpiresAt?: number|null}} l @param {number} now @param {DecideConfig} config
 * @returns {{kind: 'deadline-soon', detail: string}|null}
 */
export function deadlineCondition(l, now, config) {
  const dl = l.refreshTokenExpiresAt;
  if (typeof dl === 'number' && dl - now <= config.loginDeadlineWarnMs) {
    return { kind: 'deadline-soon', detail: `the Claude login ends at ${iso(dl)} (in ${((dl - now) / 3_600_000).toFixed(1)} h); refreshing does not extend it` };
  }
  return null;
}

/** The detail of a login-required incident of a user who never logged in (quiet: no alert). */
export const NEVER_LOGGED_IN = 'never logged in to Claude on this host';

/** The incidents of a "Claude login" kind: one replacing another ends the first silently. */
export const SSO_KINDS = /** @type {readonly IncidentKind[]} */ (Object.freeze(['login-required', 'deadline-soon']));
/** Every incident kind, in the order they are settled. */
export const INCIDENT_KINDS = /** @type {readonly IncidentKind[]} */ (Object.freeze(['login-required', 'deadline-soon', 'identity-mismatch', 'vault-denied']));

/**
 * What to do about each incident kind at the end of a run: raise (alert once: `alert` when
 * it has not been alerted yet), resolve (alert "resolved" once; the incident is dropped only
 * when that alert was handled), drop silently, or keep as it is (not evaluated this run).
 * @param {ReadonlyMap<IncidentKind, unknown>|ReadonlySet<IncidentKind>} active
 * @param {ReadonlySet<IncidentKind>} evaluated
 * @param {Partial<Record<IncidentKind, {alerted: boolean}>>} incidents
 * @returns {{kind: IncidentKind, do: 'raise'|'resolve'|'drop'|'keep', alert: boolean}[]}
 */
export function incidentPlan(active, evaluated, incidents) {
  const ssoActive = SSO_KINDS.some((k) => active.has(k));
  return INCIDENT_KINDS.map((kind) => {
    const inc = incidents[kind];
    if (active.has(kind)) return { kind, do: 'raise', alert: !inc || !inc.alerted };
    if (!inc || !evaluated.has(kind)) return { kind, do: 'keep', alert: false };
    // Cleared. An SSO incident superseded by another SSO incident ends silently.
    if (inc.alerted && !(SSO_KINDS.includes(kind) && ssoActive)) return { kind, do: 'resolve', alert: true };
    return { kind, do: 'drop', alert: false };
  });
}

/**
 * The exit code: the most severe condition of the run.
 * @param {ReadonlySet<IncidentKind>|ReadonlyMap<IncidentKind, unknown>} active @param {ReadonlySet<string>} codes
 * @param {{OK: number, ERROR: number, TRANSIENT: number, LOGIN_REQUIRED: number, IDENTITY_MISMATCH: number, VAULT_DENIED: number}} EXIT
 */
export function exitCode(active, codes, EXIT) {
  if (active.has('identity-mismatch')) return EXIT.IDENTITY_MISMATCH;
  if (active.has('login-required')) return EXIT.LOGIN_REQUIRED;
  if (active.has('vault-denied')) return EXIT.VAULT_DENIED;
  if (codes.has(CODE.ERROR)) return EXIT.ERROR;
  if (codes.has(CODE.TRANSIENT)) return EXIT.TRANSIENT;
  return EXIT.OK;
}
