// @ts-check
/** claude-token-renew: the state file (incidents, backoff, identity check, last sync, hash history; no secrets). */
import { ensurePrivateDir, readNoFollow, writeAtomic } from './files.mjs';

/** @typedef {import('./config.mjs').Paths} Paths */


/**
 * @typedef {import('./decide.mjs').IncidentKind} IncidentKind
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
 *   lastRun: {at: string, exit: number, actions: string[]} | null,
 *   setup?: {hash: string, ok: boolean|null, detail: string, checkedAt: string, expiresAt: number|null} | null
 * }} State
 */

/** @returns {State} */
export function emptyState() {
  return { version: 1, incidents: {}, backoff: null, deadRefreshHash: null, verified: null, mismatch: null, lastSync: null, history: [], lastRun: null };
}
/** @param {Paths} paths @returns {Promise<State>} */
export async function loadState(paths) {
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
export async function saveState(paths, st) {
  await ensurePrivateDir(paths.stateDir);
  await writeAtomic(paths.stateFile, JSON.stringify(st, null, 2) + '\n', 0o600);
}

