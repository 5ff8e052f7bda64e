// @ts-check
/**
 * Files the agents write: always a temp file in the same directory, fsync'ed, renamed over
 * the target (a symlink there is replaced, never followed), then the directory fsync'ed.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';

/** The temp name of `name` in this process: `.<name>.tmp-<pid>-<hex>` (see TEMP_RE). @param {string} name */
export const tmpName = (name) => `.${name}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
/** A temp file left by a crashed writer; its pid is the number after `.tmp-`. */
export const TEMP_RE = /^\..+\.tmp-[0-9]+-[0-9a-f]+$/;

/** @param {string} dir */
export async function fsyncDir(dir) {
  const h = await fsp.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * temp (O_EXCL|O_NOFOLLOW, `mode`) + write + fsync + rename + dir fsync.
 * @param {string} file @param {string} content
 * @param {{mode?: number, dirSync?: 'required'|'best-effort'}} [o]
 *   dirSync: 'required' = a failed directory fsync fails the write (default 'best-effort')
 */
export async function writeAtomic(file, content, o = {}) {
  const mode = o.mode ?? 0o600;
  const dir = path.dirname(file);
  const tmp = path.join(dir, tmpName(path.basename(file)));
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
  if (o.dirSync === 'required') await fsyncDir(dir);
  else await fsyncDir(dir).catch(() => {}); // best effort
}

/** A symlink `dir/name` -> `target`, replaced atomically, dir fsync'ed. @param {string} dir @param {string} name @param {string} target */
export async function symlinkAtomic(dir, name, target) {
  const tmp = path.join(dir, tmpName(name));
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, path.join(dir, name));
  await fsyncDir(dir);
}

/**
 * Reads a regular file without following a symlink at the last component.
 * @param {string} file @param {number} [maxBytes]
 * @returns {Promise<{kind:'ok', text:string} | {kind:'missing'} | {kind:'symlink'} | {kind:'notfile'} | {kind:'toobig'} | {kind:'unreadable', error:string}>}
 */
export async function readNoFollow(file, maxBytes = 1 << 20) {
  /** @type {import('node:fs/promises').FileHandle|undefined} */
  let fh;
  try {
    fh = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = /** @type {NodeJS.ErrnoException} */ (e).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    if (code === 'ELOOP') return { kind: 'symlink' };
    return { kind: 'unreadable', error: errText(e) };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { kind: 'notfile' };
    if (st.size > maxBytes) return { kind: 'toobig' };
    return { kind: 'ok', text: await fh.readFile('utf8') };
  } finally {
    await fh.close();
  }
}

/** @param {unknown} e */
function errText(e) {
  if (e instanceof Error) {
    const cause = /** @type {{cause?: {code?: string, message?: string}}} */ (e).cause;
    const c = cause && (cause.code || cause.message);
    return c ? `${e.message} (${c})` : e.message;
  }
  return String(e);
}
