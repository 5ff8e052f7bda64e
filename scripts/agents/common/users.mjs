// @ts-check
/**
 * The one reader of /etc/workstations/users.json (docs/CONTRACTS.md), written by the program
 * (components/scripts/account.ts):
 *   {"version": 1, "users": [{"name", "uid", "home", "state", "email", "tmuxPersist",
 *    "claudeTokenRenew", "claudeLogin"}, ...]}
 * The file is refused unless it is a JSON object with `version` === USERS_INDEX_VERSION and a
 * `users` array. An entry is valid when it is an object with a unix `name` (USER_NAME_RE) and
 * an integer `uid` >= 0; the others are returned apart (`malformed`), so that each agent
 * decides what an invalid entry means to it. What `state` and the opt-out flags mean is the
 * agents' (they act only on `active` users).
 */
import fs from 'node:fs';

/** Where the program writes the index. */
export const USERS_FILE = '/etc/workstations/users.json';
/** The users.json format version the agents accept (the program's, components/). */
export const USERS_INDEX_VERSION = 1;
/** A unix user name as the roster allows it (and useradd's default), at most 32 characters. */
export const USER_NAME_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * @typedef {{name: string, uid: number, home?: string, state?: string, email?: string,
 *   tmuxPersist?: boolean, claudeTokenRenew?: boolean, claudeLogin?: string|null}} UserEntry
 * @typedef {{name?: unknown, uid?: unknown}} MalformedEntry
 * @typedef {{version: number, users: UserEntry[], malformed: MalformedEntry[]}} UsersIndex
 */

/** The users file cannot be used. kind: unreadable (the read or JSON failed), invalid (format). */
export class UsersFileError extends Error {
  /** @param {string} message @param {'unreadable'|'invalid'} kind @param {string} code errno code, or SyntaxError / EINVAL */
  constructor(message, kind, code) {
    super(message);
    this.kind = kind;
    this.code = code;
  }
}

/** @param {unknown} u @returns {u is UserEntry} */
export function isUserEntry(u) {
  const x = /** @type {Record<string, unknown>} */ (u);
  return !!x && typeof x === 'object' && !Array.isArray(x) && typeof x.name === 'string' && USER_NAME_RE.test(x.name) &&
    Number.isInteger(x.uid) && /** @type {number} */ (x.uid) >= 0;
}

/**
 * Reads and checks the users index.
 * @param {string} [file] @returns {UsersIndex} @throws {UsersFileError}
 */
export function readUsersIndex(file = USERS_FILE) {
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    const x = /** @type {NodeJS.ErrnoException} */ (e);
    throw new UsersFileError(`cannot read users file ${file}: ${x instanceof Error ? x.message : String(x)}`, 'unreadable', String(x.code || x.name || 'error'));
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc) || doc.version !== USERS_INDEX_VERSION || !Array.isArray(doc.users)) {
    throw new UsersFileError(`users file ${file}: expected {"version": ${USERS_INDEX_VERSION}, "users": [...]}`, 'invalid', 'EINVAL');
  }
  /** @type {UserEntry[]} */
  const users = [];
  /** @type {MalformedEntry[]} */
  const malformed = [];
  for (const u of doc.users) {
    if (isUserEntry(u)) users.push(u);
    else malformed.push(u && typeof u === 'object' ? { name: u.name, uid: u.uid } : {});
  }
  return { version: doc.version, users, malformed };
}
