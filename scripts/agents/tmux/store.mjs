// @ts-check
/**
 * tmux-persist: the snapshot store. <state-dir>/<user>/snap-<UTC time>-<rand>.json (0600, in
 * root-owned 0700 dirs), the `last` and `boot` pointers, pruning, "unchanged" detection and
 * the run lock. Every file is written temp + fsync + rename + dir fsync (../common/fs.mjs).
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fsyncDir, symlinkAtomic, TEMP_RE, writeAtomic } from '../common/fs.mjs';
import { FatalError, SNAPSHOT_FORMAT, errMsg, log, readOr, readlinkOr, sleepSync } from './core.mjs';
import { LIMITS } from './limits.mjs';

/** @typedef {import('./core.mjs').Options} Options @typedef {import('./core.mjs').User} User */
export { symlinkAtomic };

/**
 * @typedef {{pid: number, startedAt: string, uuid: string|null, status: string,
 *   source: string|null, transcript: string|null, configDir: string, cwd: string,
 *   note?: string, candidates?: string[], identifiedBy?: string}} ClaudeRec
 *   source: session-file (Claude's own sessions/<pid>.json) | argv | restore-wrapper | transcript;
 *   identifiedBy: session-file (only the session file says it is claude) | exe-argv
 * @typedef {{index: number, active: boolean, cwd: string, pid: number, dead?: boolean,
 *   claude: ClaudeRec|null}} PaneRec
 * @typedef {{index: number, name: string, autoName: boolean, layout: string, active: boolean,
 *   panes: PaneRec[]}} WindowRec
 * @typedef {{name: string, group: string|null, baseIndex?: number, windows: WindowRec[]}} SessionRec
 *   baseIndex: the session's base-index when saved (where a new session's first window goes)
 * @typedef {{format: string, createdAt: string, host: string, user: string, uid: number,
 *   home: string, socket: string, sessions: SessionRec[]}} Snapshot
 */

/** @param {Options} o @param {string} [name] */
export function stateDirOf(o, name) {
  return name ? path.join(o.stateDir, name) : o.stateDir;
}
/**
 * A root-owned directory nobody else can read or write. A user's dir is exactly 0700; the
 * state root may keep search permission (the host component creates it 0711).
 * @param {string} dir @param {boolean} [root]
 */
export function ensurePrivateDir(dir, root = false) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (st.uid !== 0 || st.gid !== 0) fs.chownSync(dir, 0, 0);
  const mode = st.mode & 0o7777;
  const want = root ? mode & 0o711 : 0o700;
  if (mode !== want) fs.chmodSync(dir, want);
}
/** The state root, made private if needed; a failure is fatal for the run. @param {{stateDir: string}} o */
export function ensureStateRoot(o) {
  try {
    ensurePrivateDir(o.stateDir, true);
  } catch (e) {
    throw new FatalError(`state dir ${o.stateDir}: ${errMsg(e)}`);
  }
}
// The fsyncs are asynchronous so that the users' files are made durable at once (one journal
// commit serves many); the order per file is unchanged: data fsync'ed, then renamed, then the
// directory fsync'ed, and `last` only after that.
/** temp + fsync + rename + dir fsync @param {string} dir @param {string} name @param {string} data */
export async function writeFileAtomic(dir, name, data) {
  await writeAtomic(path.join(dir, name), data, { mode: 0o600, dirSync: 'required' });
}
/** @param {string} dir @param {string} link @returns {string|null} */
export function pointer(dir, link) {
  const t = readlinkOr(path.join(dir, link));
  return t && /^snap-[A-Za-z0-9.-]+\.json$/.test(t) ? t : null;
}
/** @param {string} dir @returns {string[]} newest first */
export function snapshotFiles(dir) {
  let names = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => /^snap-[A-Za-z0-9.-]+\.json$/.test(n)).sort().reverse();
}
/** A snapshot over LIMITS.snapshotBytes: refused on save, not read on restore. */
export class SnapshotTooLarge extends Error {}
/** @param {string} dir @param {string} file @returns {Snapshot} */
export function readSnapshot(dir, file) {
  const fd = fs.openSync(path.join(dir, file), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  let text;
  try {
    const size = fs.fstatSync(fd).size;
    if (size > LIMITS.snapshotBytes) throw new SnapshotTooLarge(`${file}: ${size} bytes, over the cap of ${LIMITS.snapshotBytes}`);
    text = fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
  const doc = JSON.parse(text);
  if (!doc || doc.format !== SNAPSHOT_FORMAT || !Array.isArray(doc.sessions)) throw new Error(`${file}: not a ${SNAPSHOT_FORMAT} snapshot`);
  return doc;
}
/**
 * The snapshot to restore from: --snapshot, else `last`, else the newest readable file.
 * @param {Options} o @param {string} dir @returns {{file: string, snap: Snapshot}|null}
 */
export function loadSnapshot(o, dir) {
  if (o.snapshot) {
    const file = o.snapshot === 'last' || o.snapshot === 'boot' ? pointer(dir, o.snapshot) : o.snapshot;
    if (!file || file.includes('/')) throw new Error(`no snapshot ${JSON.stringify(o.snapshot)}`);
    return { file, snap: readSnapshot(dir, file) };
  }
  const last = pointer(dir, 'last');
  const order = snapshotFiles(dir);
  if (last) order.unshift(last);
  for (const file of new Set(order)) {
    try {
      return { file, snap: readSnapshot(dir, file) };
    } catch (e) {
      log('warning', 'unreadable snapshot skipped', { file: path.join(dir, file), error: errMsg(e) });
    }
  }
  return null;
}
/** A layout without its checksum and pane ids (which change with every server). @param {string} l */
function layoutShape(l) {
  return (l || '').replace(/^[0-9a-f]{4},/, '').replace(/([0-9]+x[0-9]+,[0-9]+,[0-9]+),[0-9]+/g, '$1');
}
/**
 * What makes two snapshots "the same state": only what a restore uses (names, indexes,
 * base-index, cwds, layouts, conversations); pids, times, focus, automatic window names and how a uuid was
 * found are ignored, so an unchanged state (also right after a restore) is not saved again.
 * @param {Snapshot} s
 */
export function canonical(s) {
  return JSON.stringify(
    s.sessions.map((se) => [
      se.name,
      se.group,
      se.baseIndex ?? null,
      se.windows.map((w) => [
        w.index,
        w.autoName ? null : w.name,
        layoutShape(w.layout),
        w.panes.map((p) => [p.index, p.cwd, p.claude ? [p.claude.status, p.claude.uuid] : null]),
      ]),
    ]),
  );
}
/** @param {string} dir @param {number} keep */
export async function prune(dir, keep) {
  const pinned = new Set([pointer(dir, 'last'), pointer(dir, 'boot')]);
  const files = snapshotFiles(dir);
  let removed = 0;
  for (const f of files.slice(keep)) {
    if (pinned.has(f)) continue;
    fs.rmSync(path.join(dir, f), { force: true });
    removed++;
  }
  // temp files of crashed runs
  for (const n of fs.readdirSync(dir)) {
    if (!TEMP_RE.test(n)) continue;
    const pid = Number(n.split('.tmp-')[1].split('-')[0]);
    if (pid !== process.pid && !fs.existsSync(`/proc/${pid}`)) {
      fs.rmSync(path.join(dir, n), { force: true });
      removed++;
    }
  }
  if (removed) await fsyncDir(dir);
}


/**
 * Write the snapshot file (not yet `last`), unless it equals `last`; one over
 * LIMITS.snapshotBytes is refused (SnapshotTooLarge) before anything is written.
 * @param {Options} o @param {User} u @param {Snapshot} snap @returns {Promise<string|null>} file name
 */
export async function prepareSnapshot(o, u, snap) {
  const dir = stateDirOf(o, u.name);
  ensurePrivateDir(dir);
  const last = pointer(dir, 'last');
  if (last) {
    try {
      if (canonical(readSnapshot(dir, last)) === canonical(snap)) return null;
    } catch {
      /* unreadable last: write a fresh one */
    }
  }
  const text = JSON.stringify(snap, null, 1) + '\n';
  const size = Buffer.byteLength(text);
  if (size > LIMITS.snapshotBytes) throw new SnapshotTooLarge(`${size} bytes, over the cap of ${LIMITS.snapshotBytes}`);
  const stamp = snap.createdAt.replace(/[-:]/g, '');
  const file = `snap-${stamp}-${crypto.randomBytes(3).toString('hex')}.json`;
  await writeFileAtomic(dir, file, text);
  return file;
}

// ---------------------------------------------------------------------------------------
// tombstones: sessions killed on purpose (`forget`), never restored from an older snapshot
// ---------------------------------------------------------------------------------------

/** `<state-dir>/<user>.forgotten.tsv`: `session<TAB>epoch` lines (the legacy store's format). @param {Options} o @param {string} user */
export const tombstoneFile = (o, user) => path.join(o.stateDir, `${user}.forgotten.tsv`);

/**
 * Each forgotten session name with its newest epoch (seconds). Unreadable lines are ignored.
 * @param {Options} o @param {string} user @returns {Map<string, number>}
 */
export function readTombstones(o, user) {
  /** @type {Map<string, number>} */
  const out = new Map();
  const text = readOr(tombstoneFile(o, user))?.toString('utf8') ?? '';
  for (const line of text.split('\n')) {
    const m = /^([^\t]+)\t([0-9]{1,12})$/.exec(line);
    if (m) out.set(m[1], Math.max(out.get(m[1]) ?? 0, Number(m[2])));
  }
  return out;
}

/** Adds one tombstone (the file rewritten whole, atomically). @param {Options} o @param {string} user @param {string} session @param {number} epoch */
export async function addTombstone(o, user, session, epoch) {
  const t = readTombstones(o, user);
  t.set(session, epoch);
  const text = [...t].map(([n, e]) => `${n}\t${e}\n`).join('');
  await writeFileAtomic(o.stateDir, `${user}.forgotten.tsv`, text);
}

/**
 * Whether a session of a snapshot taken at `createdAt` was forgotten after it: a tombstone
 * newer than the snapshot. A session made again under that name and saved later is restored.
 * @param {Map<string, number>} tombs @param {string} name @param {string} createdAt
 */
export function forgotten(tombs, name, createdAt) {
  const e = tombs.get(name);
  // seconds, as the tombstone: a snapshot of the same second as the forget counts as older
  return e !== undefined && e >= Math.floor(Date.parse(createdAt) / 1000);
}

/** `<state-dir>/<user>/history.tsv`: `epoch  event  detail` lines, appended. @param {Options} o @param {string} user @param {string} event @param {string} detail */
export function recordHistory(o, user, event, detail) {
  const dir = stateDirOf(o, user);
  try {
    fs.appendFileSync(path.join(dir, 'history.tsv'), `${Math.floor(Date.now() / 1000)}\t${event}\t${detail.replace(/[\t\n]/g, ' ')}\n`, { mode: 0o600 });
  } catch (e) {
    log('warning', 'history not recorded', { user, error: errMsg(e) });
  }
}

// ---------------------------------------------------------------------------------------
// the run lock
// ---------------------------------------------------------------------------------------

/** @param {string} stateRoot @param {number} waitMs @returns {(() => void)|null} */
export function acquireLock(stateRoot, waitMs) {
  const file = path.join(stateRoot, '.lock');
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      const release = () => {
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file, { force: true });
        } catch {
          /* gone */
        }
      };
      process.on('exit', release);
      return release;
    } catch (e) {
      if (/** @type {NodeJS.ErrnoException} */ (e).code !== 'EEXIST') throw e;
    }
    const holder = Number((readOr(file) || '').toString().trim());
    if (!holder || !fs.existsSync(`/proc/${holder}`)) {
      log('notice', 'removing stale lock', { holder: holder || 'unknown' });
      fs.rmSync(file, { force: true });
      continue;
    }
    if (Date.now() >= deadline) return null;
    sleepSync(100);
  }
}
