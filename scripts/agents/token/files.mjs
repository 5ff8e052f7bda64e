// @ts-check
/** claude-token-renew: Claude's credentials file, read without following symlinks, written atomically. */
import fsp from 'node:fs/promises';
import { readNoFollow, writeAtomic as writeFileAtomic } from '../common/fs.mjs';
import { MAX_FILE_BYTES, remember } from './core.mjs';

export { readNoFollow };

/**
 * Atomic write (../common/fs.mjs): temp file in the same dir (O_EXCL|O_NOFOLLOW), fsync,
 * rename over the target (a symlink at the target is replaced, never followed), fsync the
 * dir (best effort).
 * @param {string} file @param {string} content @param {number} mode
 */
export async function writeAtomic(file, content, mode = 0o600) {
  await writeFileAtomic(file, content, { mode, dirSync: 'best-effort' });
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
export async function readLocal(file) {
  const r = await readNoFollow(file, MAX_FILE_BYTES);
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
export async function ensurePrivateDir(dir) {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
}
