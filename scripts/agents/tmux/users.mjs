// @ts-check
/** tmux-persist: the users it works for: active, opted-in roster users, checked against passwd. */
import { readUsersIndex } from '../common/users.mjs';
import { FatalError, errMsg, log } from './core.mjs';
import { rootRun } from './client.mjs';

/** @typedef {import('./core.mjs').Options} Options @typedef {import('./core.mjs').User} User */

/**
 * Active, opted-in roster users (users.json through ../common/users.mjs), checked against
 * the passwd database.
 * @param {Options} o @returns {{users: User[], failed: string[]}}
 */
export function loadUsers(o) {
  let doc;
  try {
    doc = readUsersIndex(o.usersFile);
  } catch (e) {
    throw new FatalError(errMsg(e));
  }
  for (const u of doc.malformed) log('warning', 'ignoring malformed users.json entry', { name: u.name });
  /** @type {{name: string, uid: number}[]} */
  const wanted = [];
  for (const u of doc.users) {
    if (o.user && u.name !== o.user) continue;
    if (u.state !== 'active') {
      log('debug', 'user not active, ignored', { user: u.name, state: u.state });
      continue;
    }
    if (u.tmuxPersist === false) {
      log('info', 'user opted out of tmux persistence, ignored', { user: u.name });
      continue;
    }
    if (u.uid === 0) {
      log('warning', 'refusing uid 0', { user: u.name });
      continue;
    }
    wanted.push({ name: u.name, uid: u.uid });
  }
  if (o.user && !wanted.length) log('notice', 'user is not an active, opted-in roster user', { user: o.user });
  /** @type {Map<string, User>} */
  const pw = new Map();
  if (wanted.length) {
    const r = rootRun('getent', ['passwd', ...wanted.map((w) => w.name)]);
    if (r.error) throw new FatalError(`getent: ${errMsg(r.error)}`);
    for (const line of (r.stdout || '').split('\n')) {
      const f = line.split(':');
      if (f.length < 7) continue;
      pw.set(f[0], { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5], shell: f[6] || '/bin/sh' });
    }
  }
  /** @type {User[]} */
  const users = [];
  /** @type {string[]} */
  const failed = [];
  for (const w of wanted) {
    const p = pw.get(w.name);
    if (!p) {
      log('err', 'roster user has no account on this host', { user: w.name });
      failed.push(w.name);
    } else if (p.uid !== w.uid) {
      log('err', 'uid in users.json does not match passwd; user skipped', { user: w.name, roster: w.uid, passwd: p.uid });
      failed.push(w.name);
    } else users.push(p);
  }
  return { users, failed };
}
