// @ts-check
/**
 * tmux-persist import-legacy [USER]: the team's legacy store (../shared/notes/team-devvm.md)
 * carried into ours, so the next boot or on-demand restore brings back the sessions the legacy
 * tool would have (issue 21 item 3).
 *
 * Legacy: `<legacy-dir>/<user>/<YYYYMMDDTHHMMSS>.tsv` (default <state-dir>/snapshots), rows
 * `session_name<TAB>pane_cwd<TAB>claude_uuid` with `-` for empty, one per session; an older
 * flat `<state-dir>/<user>.tsv` file (not the symlink) counts as one more snapshot taken at its
 * mtime. Each becomes `<state-dir>/<user>/snap-<time>-legacy.json`: per row a session of one
 * window with one pane in that cwd, its conversation (status ok, source "legacy") when a uuid
 * is given. The time is read as UTC. Rows with a name outside the lobby's, a relative cwd or a
 * malformed uuid are left out with one log line. A snapshot already imported is not written
 * again; `last` is pointed at the newest import only when the user has no `last` of ours yet.
 * The legacy files are read, never changed. Tombstones need nothing: the legacy
 * `<user>.forgotten.tsv` is the file and format ours reads.
 */
import fs from 'node:fs';
import path from 'node:path';
import { EXIT, LOBBY_NAME_RE, SNAPSHOT_FORMAT, UUID_RE, errMsg, log } from './core.mjs';
import { ensurePrivateDir, ensureStateRoot, pointer, stateDirOf, symlinkAtomic, writeFileAtomic } from './store.mjs';
import { loadUsers } from './users.mjs';
import os from 'node:os';

/**
 * @typedef {import('./core.mjs').Options} Options @typedef {import('./core.mjs').User} User
 * @typedef {import('./store.mjs').Snapshot} Snapshot
 */

/** The legacy snapshots of a user: [time (ISO), file], oldest first. @param {Options} o @param {User} u */
function legacyFiles(o, u) {
  /** @type {[string, string][]} */
  const out = [];
  const dir = path.join(o.stateDir, 'snapshots', u.name);
  /** @type {string[]} */
  let names = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    /* none */
  }
  for (const n of names) {
    const m = /^([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})\.tsv$/.exec(n);
    if (m) out.push([`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.000Z`, path.join(dir, n)]);
  }
  const flat = path.join(o.stateDir, `${u.name}.tsv`);
  try {
    const st = fs.lstatSync(flat);
    if (st.isFile()) out.push([new Date(Math.floor(st.mtimeMs / 1000) * 1000).toISOString(), flat]);
  } catch {
    /* none */
  }
  return out.filter(([t]) => !Number.isNaN(Date.parse(t))).sort((a, b) => a[0].localeCompare(b[0]));
}

/** One legacy file as our snapshot. @param {User} u @param {string} createdAt @param {string} text @param {string} file */
function convert(u, createdAt, text, file) {
  /** @type {Snapshot} */
  const snap = { format: SNAPSHOT_FORMAT, createdAt, host: os.hostname(), user: u.name, uid: u.uid, home: u.home, socket: '', sessions: [] };
  let left = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [name, cwd, uuid] = line.split('\t');
    const ok = LOBBY_NAME_RE.test(name ?? '') && (cwd ?? '').startsWith('/') && (uuid === '-' || UUID_RE.test(uuid ?? ''));
    if (!ok || snap.sessions.some((s) => s.name === name)) {
      left++;
      continue;
    }
    const claude = uuid === '-' ? null : { pid: 0, startedAt: createdAt, uuid: uuid.toLowerCase(), status: 'ok', source: 'legacy', transcript: null, configDir: path.join(u.home, '.claude'), cwd };
    snap.sessions.push({
      name,
      group: null,
      windows: [{ index: 0, name: '', autoName: true, layout: '', active: true, panes: [{ index: 0, active: true, cwd, pid: 0, claude: /** @type {any} */ (claude) }] }],
    });
  }
  if (left) log('warning', 'legacy rows left out (a name outside the lobby\'s, a relative cwd or a bad uuid)', { user: u.name, file, rows: left });
  return snap;
}

/** @param {Options} o @returns {Promise<number>} */
export async function cmdImportLegacy(o) {
  // run before every save and restore (the units' ExecStartPre): nothing to do, nothing read
  const flat = () => fs.readdirSync(o.stateDir).some((n) => /^[a-z_][a-z0-9_-]*\.tsv$/.test(n));
  if (!fs.existsSync(path.join(o.stateDir, 'snapshots')) && !(fs.existsSync(o.stateDir) && flat())) return EXIT.OK;
  const { users, failed } = loadUsers(o);
  ensureStateRoot(o);
  let bad = failed.length;
  for (const u of users) {
    const dir = stateDirOf(o, u.name);
    let imported = 0;
    let newest = '';
    try {
      for (const [createdAt, file] of legacyFiles(o, u)) {
        const name = `snap-${createdAt.replace(/[-:]/g, '')}-legacy.json`;
        newest = name;
        if (fs.existsSync(path.join(dir, name))) continue;
        const snap = convert(u, createdAt, fs.readFileSync(file, 'utf8'), file);
        ensurePrivateDir(dir);
        await writeFileAtomic(dir, name, JSON.stringify(snap, null, 1) + '\n');
        imported++;
      }
      if (newest && !pointer(dir, 'last')) await symlinkAtomic(dir, 'last', newest);
      log('info', 'legacy snapshots imported', { user: u.name, imported, last: pointer(dir, 'last') ?? '-' });
    } catch (e) {
      log('err', 'legacy import failed', { user: u.name, error: errMsg(e) });
      bad++;
    }
  }
  return bad ? EXIT.PARTIAL : EXIT.OK;
}
