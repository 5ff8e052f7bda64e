// @ts-check
/**
 * tmux-persist: what every module shares: exit codes, the snapshot format name, fixed rules,
 * errors, the logger, the users' type and small helpers. See ../tmux-persist.mjs.
 */
import fs from 'node:fs';
import { createLogger, errMsg } from '../common/log.mjs';
import { UsageError } from '../common/args.mjs';
import { USER_NAME_RE } from '../common/users.mjs';

// the users' snapshot files are fsync'ed at once (see fsyncDir): more threads than libuv's 4
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '16';

export const EXIT = Object.freeze({ OK: 0, PARTIAL: 1, USAGE: 2, FATAL: 3, SKIPPED: 75 });

export const SNAPSHOT_FORMAT = 'tmux-persist/1';
/** slack (ms) when comparing a transcript's birth time with the process start time */
export const START_SLACK_MS = 500;
/** clock ticks per second of /proc/PID/stat starttime (USER_HZ, 100 on every Linux arch) */
export const CLK_TCK = 100;
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const USER_RE = USER_NAME_RE;
export const RESUME_MARK = 'tmux-persist-resume';
/**
 * The pane command of a resumed conversation: `/bin/sh -c RESUME_SCRIPT tmux-persist-resume
 * <claude-bin> <resume args…>`; a shell remains when claude exits.
 */
export const RESUME_SCRIPT =
  // the setup-token mode's login (README "Claude logins"), as every Claude start reads it
  'if [ -r /etc/profile.d/workstations-claude-token.sh ]; then . /etc/profile.d/workstations-claude-token.sh; fi; ' +
  'bin=$1; shift; "$bin" "$@"; rc=$?; ' +
  'printf "\\n[tmux-persist] claude exited (status %s); starting a shell\\n" "$rc"; ' +
  'exec "${SHELL:-/bin/sh}" -l';
/** The resume arguments by default; {uuid} and {session} are replaced per pane. */
export const DEFAULT_RESUME_ARGS = Object.freeze(['--resume', '{uuid}']);
/**
 * The session names the team's web lobby uses (its pre-warmed pool slots have other names):
 * with `--names lobby` (the default) others are neither saved nor restored.
 */
export const LOBBY_NAME_RE = /^[a-zA-Z0-9_-]{1,32}$/;

// ---------------------------------------------------------------------------------------
// errors, logging
// ---------------------------------------------------------------------------------------

/**
 * @typedef {{cmd: string, usersFile: string, stateDir: string, keep: number, user: string|null,
 *   claudeBin: string, proc: string, snapshot: string|null, spawn: 'auto'|'scope'|'direct',
 *   json: boolean, dryRun: boolean, perPane: boolean, verbose: boolean, help: boolean,
 *   resumeArgs: readonly string[], names: 'lobby'|'all', args: string[]}} Options
 * @typedef {{name: string, uid: number, gid: number, home: string, shell: string}} User
 */
export { UsageError, errMsg };
/** fatal for the whole run: exit 3 */
export class FatalError extends Error {}

/**
 * One line per event; string values with anything but plain characters are JSON-quoted, so
 * names with newlines or tabs can never split or forge a log line. LOGCFG.tag is the command.
 */
export const { log, cfg: LOGCFG } = createLogger({ name: 'tmux-persist', journal: !!process.env.JOURNAL_STREAM, newlines: 'space' });

/** @param {number} ms */
export function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** how many users are worked on at once (clients, servers, fsyncs); --per-pane: 1 */
export const PARALLEL = 8;
/**
 * Run `tasks` with at most n at a time; results in order.
 * @template T @param {(() => Promise<T>)[]} tasks @param {number} n @returns {Promise<T[]>}
 */
export async function inParallel(tasks, n) {
  /** @type {T[]} */
  const out = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const k = next++;
      out[k] = await tasks[k]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
  return out;
}

/** the content of a file, or null @param {string} p */
export function readOr(p) {
  try {
    return fs.readFileSync(p);
  } catch {
    return null;
  }
}
/** a symlink target, or "" @param {string} p */
export function readlinkOr(p) {
  try {
    return fs.readlinkSync(p);
  } catch {
    return '';
  }
}

