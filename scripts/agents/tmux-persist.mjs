#!/usr/bin/env node
// @ts-check
/**
 * tmux-persist: roster users' tmux sessions survive reboots, each resuming its Claude
 * conversation.  SPEC §3.4, ../shared/notes/tmux-persistence.md, docs/CONTRACTS.md.
 *
 *   tmux-persist save     one snapshot per roster user (active, tmuxPersist !== false)
 *   tmux-persist restore  recreate the sessions of the last snapshot that are missing
 *   tmux-persist status   per user: last snapshot and what a restore would do (dry run)
 *
 * Runs as root (from tmux-persist-save.service / tmux-persist-restore.service). Every tmux
 * command runs as the user, on the user's default socket ($TMUX_TMPDIR or /tmp, then
 * tmux-<uid>/default); tmux computes that path itself because the client runs with the
 * user's uid and a clean environment.
 *
 * How the user's uid is taken
 *   - Queries and all commands sent to an already running server: the tmux client is spawned
 *     with the user's uid/gid (node spawn options; libuv drops supplementary groups). These
 *     clients only talk to the server over its socket, so no extra groups are needed.
 *   - The command that STARTS a user's tmux server (restore, first new-session) goes through
 *     `runuser -u <user> --`: initgroups() gives the server and every pane the user's real
 *     supplementary groups, and pam_limits applies the user's limits. Under systemd (PID 1,
 *     /run/systemd/system exists) it is wrapped in
 *       systemd-run --scope --collect --slice=tmux-persist.slice
 *                   --unit=tmux-persist-<user>-<t>.scope -- runuser ...
 *     so the server lives in its own transient scope and NOT in the cgroup of
 *     tmux-persist-restore.service: the oneshot ending (or being restarted) cannot kill it.
 *     The scope is ordered Before=tmux-persist-save.service, so at shutdown a running save is
 *     stopped before the restored server is killed.
 *     `systemd-run --scope --uid=` is deliberately not used: for scopes it only does
 *     setresuid/setresgid and keeps the caller's supplementary groups. Without systemd (the
 *     local tests) the server is started by runuser directly and simply daemonizes.
 *     Override with --spawn scope|direct.
 *
 * Save asks every user's server at once (one list-panes each), reads /proc once, and writes
 *   the users' snapshot files at once (each still temp + fsync + rename + dir fsync).
 *
 * Claude panes (save)
 *   - One pass over /proc per save reads stat (ppid, start time), cmdline and exe of every
 *     process. A process is claude by argv[0] basename `claude`, an exe/argv[0] under
 *     `.../claude/versions/<v>` (native installer; its comm is the version string), or
 *     node/bun running a script named `claude` or `@anthropic-ai/claude-code/cli.js`.
 *     pane_current_command is never used. A claude below another claude is a helper and is
 *     ignored. A claude belongs to the pane whose pane_pid is its nearest pane ancestor.
 *   - Conversation uuid: A = argv `--resume <uuid>`, `--resume=<uuid>`, `-r <uuid>`,
 *     `--session-id <uuid>` of the claude process, or else of the `tmux-persist-resume`
 *     wrapper that restore put above it. Transcript dir D = <CLAUDE_CONFIG_DIR or
 *     ~/.claude>/projects/<slug(cwd)> (CLAUDE_CONFIG_DIR read from /proc/PID/environ, nothing
 *     else is kept from it). C = transcripts in D created (birth time) after the process
 *     started.
 *       * another live claude of the same user uses the same D: A if present, otherwise
 *         status "ambiguous" (the candidates are recorded, nothing is guessed);
 *       * otherwise the most recently written file among C ∪ {A's transcript}. So argv wins
 *         while it is the conversation being written, and a stale argv (after /clear, or a
 *         resume that forked a new file) loses to the newer conversation created since the
 *         process started. Without A this is "the newest transcript created after start"
 *         (newest = last written, so /clear then /resume back to the first is right too);
 *       * no A and C empty: status "no-transcript" (a never-messaged session).
 *
 * State: <state-dir>/<user>/snap-<UTC time>-<rand>.json (JSON, mode 0600, user dirs 0700,
 *   the state dir itself 0700 or 0711 (as the host component creates it), all root-owned), written temp + fsync + rename + dir fsync; `last` is a symlink replaced the
 *   same way. An empty save (no server / no sessions) or a failed one never touches `last`;
 *   a save equal to `last` in everything a restore uses (names, indexes, cwds, layout shape,
 *   conversations; not pids, focus, automatic window names) is dropped; the newest --keep
 *   files are kept plus whatever `last` and `boot` (the snapshot the last restore used)
 *   point to. During shutdown (systemctl is-system-running = stopping) nothing is saved,
 *   checked again right before `last` moves.
 *   Snapshot: {format: "tmux-persist/1", createdAt, host, user, uid, home, socket,
 *   sessions: [{name (as tmux stores it), group, baseIndex? (its base-index; older
 *   snapshots lack it), windows: [{index, name, autoName, layout,
 *   active, panes: [{index, active, cwd, pid, claude: null | {pid, startedAt, uuid, status:
 *   ok|ambiguous|no-transcript, source: argv|restore-wrapper|transcript, transcript,
 *   configDir, cwd, note?, candidates?}}]}]}]}. JSON strings carry tabs, newlines, quotes
 *   and unicode unchanged.
 *
 * Restore: sessions that exist (by name) are left alone; a conversation already running (any
 *   live claude of the user, same rules) is not started twice (the pane comes back as a
 *   shell); a pane whose cwd or transcript is gone is skipped with a log line and a session
 *   left with no pane is skipped; ambiguous / never-messaged claude panes come back as shells.
 *   Claude panes run `/bin/sh -c '<claude-bin> --resume <uuid>; exec $SHELL -l'` (with
 *   `-e CLAUDE_CONFIG_DIR=` when the conversation lives elsewhere), so a shell remains when
 *   claude exits. The first session starts the server; there is no bootstrap session.
 *   Windows keep their index and (unless automatic-rename was on) their name; panes are
 *   split in order and the saved layout is applied when every pane came back; grouped
 *   sessions are recreated grouped. Names go back through tmux's own escaping (session names
 *   are un-vis'ed, '#' doubled, a trailing ';' escaped) so they round-trip exactly.
 *   Batched: all of a user's sessions are made by ONE tmux client (one argv command list,
 *   ';' as arguments of their own; cut at tmux's 16 KB message limit), which is also the one
 *   that starts the server; one more when a session name starts with '$' (tmux reads
 *   `=$…` as an id) or the snapshot has no baseIndex. A list that fails part-way is
 *   continued from the step that failed, that session one client per step (the per-pane
 *   path, also --per-pane), the others batched; see "restore: tmux command lists" below.
 *   Users are restored several at once (their servers are independent). `restore done`
 *   logs tmuxCalls=, the clients started for the user. No client at all is started for a
 *   user whose socket does not exist (after a reboot).
 *
 * Logs: stderr, one line per event, values JSON-quoted when not plain; with <N> syslog
 *   priority prefixes when JOURNAL_STREAM is set. environ is read only for CLAUDE_CONFIG_DIR
 *   and never logged.
 *
 * Exit codes:
 *   0   ok, nothing to do, or nothing saved because every server was down/empty
 *   1   at least one user failed (the others were processed)
 *   2   usage error
 *   3   fatal: not root, users file unreadable/invalid, state dir unusable, lock timeout
 *       (restore), or /proc unreadable
 *   75  skipped on purpose (save): shutdown in progress, restore running, or another run
 *       holds the lock; the units treat it as success (SuccessExitStatus=75)
 *
 * No npm dependencies; Node >= 18 (Debian bookworm).
 */

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';

// the users' snapshot files are fsync'ed at once (see fsyncDir): more threads than libuv's 4
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '16';

export const EXIT = Object.freeze({ OK: 0, PARTIAL: 1, USAGE: 2, FATAL: 3, SKIPPED: 75 });

export const SNAPSHOT_FORMAT = 'tmux-persist/1';
const DEFAULTS = Object.freeze({
  usersFile: '/etc/workstations/users.json',
  stateDir: '/var/lib/tmux-persist',
  keep: 10,
  claudeBin: 'claude',
  proc: '/proc',
});
/** slack (ms) when comparing a transcript's birth time with the process start time */
const START_SLACK_MS = 500;
/** clock ticks per second of /proc/PID/stat starttime (USER_HZ, 100 on every Linux arch) */
const CLK_TCK = 100;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const USER_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;
const RESUME_MARK = 'tmux-persist-resume';
const RESUME_SCRIPT =
  '"$1" --resume "$2"; rc=$?; ' +
  'printf "\\n[tmux-persist] claude exited (status %s); starting a shell\\n" "$rc"; ' +
  'exec "${SHELL:-/bin/sh}" -l';

// ---------------------------------------------------------------------------------------
// programs root runs
// ---------------------------------------------------------------------------------------

/**
 * Root's own, fixed search path. Nothing root executes is looked up in a PATH a user
 * controls (the user's ~/.local/bin, or the caller's environment): every program is
 * resolved here once, to an absolute path of a root-owned file that no one else may write.
 */
export const ROOT_PATH = Object.freeze(['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']);
/** The environment of every process root starts (never the user's, never the caller's). */
export const ROOT_ENV = Object.freeze({ PATH: ROOT_PATH.join(':'), LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' });

/** @type {Map<string, string>} */
const trustedCache = new Map();
/**
 * Absolute path of `name` in ROOT_PATH, only if it (after symlinks) is a regular executable
 * file owned by root and writable by no one else, in a directory with the same properties.
 * @param {string} name @returns {string}
 */
export function trustedBin(name) {
  const hit = trustedCache.get(name);
  if (hit) return hit;
  if (!/^[A-Za-z0-9._+-]+$/.test(name)) throw new FatalError(`not a program name: ${JSON.stringify(name)}`);
  for (const dir of ROOT_PATH) {
    const p = path.join(dir, name);
    let real;
    try {
      real = fs.realpathSync(p);
      const st = fs.statSync(real);
      const dst = fs.statSync(path.dirname(real));
      if (!st.isFile() || (st.mode & 0o111) === 0) continue;
      if (st.uid !== 0 || (st.mode & 0o022) !== 0 || dst.uid !== 0 || (dst.mode & 0o022) !== 0) {
        log('warning', 'ignoring a program root does not own exclusively', { name, path: real });
        continue;
      }
    } catch {
      continue;
    }
    trustedCache.set(name, real);
    return real;
  }
  throw new FatalError(`${name} not found in root's PATH (${ROOT_PATH.join(':')}) as a root-owned executable`);
}

/**
 * Runs a program as root: absolute path from trustedBin, root's fixed environment, cwd /.
 * @param {string} name @param {string[]} args @param {import('node:child_process').SpawnSyncOptions} [opts]
 */
function rootRun(name, args, opts = {}) {
  return /** @type {import('node:child_process').SpawnSyncReturns<string>} */ (spawnSync(trustedBin(name), args, { encoding: 'utf8', cwd: '/', ...opts, env: { ...ROOT_ENV } }));
}

// ---------------------------------------------------------------------------------------
// logging
// ---------------------------------------------------------------------------------------

/** @typedef {'err'|'warning'|'notice'|'info'|'debug'} Level */
const PRIO = { err: 3, warning: 4, notice: 5, info: 6, debug: 7 };
const LOGCFG = { verbose: false, journal: !!process.env.JOURNAL_STREAM, cmd: '' };

/** @param {unknown} v */
function fmtVal(v) {
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[A-Za-z0-9_./:@%+,=-]+$/.test(s) ? s : JSON.stringify(s);
}
/**
 * One line per event; string values with anything but plain characters are JSON-quoted, so
 * names with newlines or tabs can never split or forge a log line.
 * @param {Level} level @param {string} msg @param {Record<string, unknown>} [fields]
 */
function log(level, msg, fields) {
  if (level === 'debug' && !LOGCFG.verbose) return;
  let line = msg;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${fmtVal(v)}`;
  }
  line = line.replace(/[\r\n]/g, ' ');
  const prefix = LOGCFG.journal ? `<${PRIO[level]}>` : `tmux-persist${LOGCFG.cmd ? ' ' + LOGCFG.cmd : ''}: ${level}: `;
  process.stderr.write(prefix + line + '\n');
}
/** @param {unknown} e */
function errMsg(e) {
  return e instanceof Error ? e.message : String(e);
}
/** @param {number} ms */
function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// ---------------------------------------------------------------------------------------
// small pure helpers (exported for tests)
// ---------------------------------------------------------------------------------------

/** Claude's project dir name: every UTF-16 unit outside [A-Za-z0-9] becomes '-'. @param {string} cwd */
export function slugify(cwd) {
  return cwd.replace(/[^A-Za-z0-9]/g, '-');
}

/**
 * Undo tmux's utf8_stravis(VIS_OCTAL|VIS_CSTYLE|VIS_TAB|VIS_NL) of session names, so that
 * passing the result to new-session -s yields the same stored name again. tmux 3.3a also
 * writes a '$' before a letter, '_' or '{' as '\$' (a backslash itself is '\\', so '\$' is
 * only ever that escape).
 * @param {string} s
 */
export function unvis(s) {
  /** @type {Buffer[]} */
  const parts = [];
  /** @type {number[]} */
  let bytes = [];
  const flush = () => {
    if (bytes.length) parts.push(Buffer.from(bytes));
    bytes = [];
  };
  /** @type {Record<string, number>} */
  const cstyle = { n: 10, t: 9, r: 13, b: 8, a: 7, v: 11, f: 12, s: 32, '\\': 92, $: 36 };
  let i = 0;
  let plain = '';
  while (i < s.length) {
    const ch = s[i];
    if (ch !== '\\' || i + 1 >= s.length) {
      plain += ch;
      i++;
      continue;
    }
    if (plain) {
      flush();
      parts.push(Buffer.from(plain, 'utf8'));
      plain = '';
    }
    const n = s[i + 1];
    if (n in cstyle) {
      bytes.push(cstyle[n]);
      i += 2;
      continue;
    }
    const m = /^[0-7]{1,3}/.exec(s.slice(i + 1, i + 4));
    if (m) {
      bytes.push(parseInt(m[0], 8) & 0xff);
      i += 1 + m[0].length;
      continue;
    }
    bytes.push(92);
    i++;
  }
  if (plain) {
    flush();
    parts.push(Buffer.from(plain, 'utf8'));
  }
  flush();
  return Buffer.concat(parts).toString('utf8');
}

/**
 * tmux ends a command at any argument ending in ';' (a literal one is written '\;'): protect
 * an argument that comes from a snapshot. @param {string} s
 */
export function tmuxArg(s) {
  return s.endsWith(';') ? s.slice(0, -1) + '\\;' : s;
}
/** tmux also expands formats in -s/-n/-c arguments: a literal for those. @param {string} s */
export function tmuxLiteral(s) {
  return tmuxArg(s.replace(/#/g, '##'));
}

/**
 * The conversation uuid named on a claude command line, or null.
 * @param {string[]} argv full argv (argv[0] = program)
 */
export function argvUuid(argv) {
  let found = null;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    let v = null;
    if (a === '--resume' || a === '-r' || a === '--session-id') v = argv[i + 1] ?? null;
    else if (a.startsWith('--resume=')) v = a.slice(9);
    else if (a.startsWith('--session-id=')) v = a.slice(13);
    if (v !== null && UUID_RE.test(v)) found = v.toLowerCase();
  }
  return found;
}

/** @param {string} p */
function base(p) {
  const i = p.lastIndexOf('/');
  return i < 0 ? p : p.slice(i + 1);
}
const VERSIONS_RE = /\/claude\/versions\/[^/]+$/;
/**
 * Is this process Claude Code (by executable and argv, never by its title/comm)?
 * @param {string[]} argv @param {string} exe
 */
export function isClaudeProcess(argv, exe) {
  if (!argv.length) return false;
  const a0 = argv[0];
  if (base(a0) === 'claude' || VERSIONS_RE.test(a0)) return true;
  const e = exe.replace(/ \(deleted\)$/, '');
  if (base(e) === 'claude' || VERSIONS_RE.test(e)) return true;
  const interp = /^(node|nodejs|bun)$/;
  if (interp.test(base(e)) || interp.test(base(a0))) {
    const a1 = argv[1] || '';
    if (base(a1) === 'claude' || /@anthropic-ai\/claude-code\/cli\.m?js$/.test(a1)) return true;
  }
  return false;
}

/**
 * @typedef {{uuid: string, path: string, birthMs: number, mtimeMs: number}} Transcript
 * @typedef {{uuid: string|null, status: 'ok'|'ambiguous'|'no-transcript', source: string|null,
 *   transcript: string|null, note?: string, candidates?: string[]}} UuidDecision
 */
/**
 * The uuid rule (see the header). Pure: the caller lists the transcripts.
 * @param {{startMs: number, argvUuid: string|null, argvSource: string|null, shared: boolean,
 *   transcripts: Transcript[], argvTranscript: Transcript|null}} p
 * @returns {UuidDecision}
 */
export function decideUuid(p) {
  const created = p.transcripts.filter((t) => t.birthMs >= p.startMs - START_SLACK_MS);
  if (p.shared) {
    if (p.argvUuid) {
      return {
        uuid: p.argvUuid,
        status: 'ok',
        source: p.argvSource,
        transcript: p.argvTranscript ? p.argvTranscript.path : null,
        note: 'another claude uses the same project dir; argv uuid kept, transcript inference disabled',
      };
    }
    return {
      uuid: null,
      status: 'ambiguous',
      source: null,
      transcript: null,
      note: 'another claude uses the same project dir and neither argv names a conversation',
      candidates: created.map((t) => t.uuid).sort(),
    };
  }
  /** @type {Transcript[]} */
  const pool = created.slice();
  if (p.argvTranscript && !pool.some((t) => t.uuid === p.argvTranscript?.uuid)) pool.push(p.argvTranscript);
  pool.sort((a, b) => b.mtimeMs - a.mtimeMs || b.birthMs - a.birthMs || (a.uuid < b.uuid ? -1 : 1));
  const best = pool[0];
  if (p.argvUuid) {
    if (!best || best.uuid === p.argvUuid) {
      return {
        uuid: p.argvUuid,
        status: 'ok',
        source: p.argvSource,
        transcript: p.argvTranscript ? p.argvTranscript.path : null,
        note: p.argvTranscript ? undefined : 'transcript of the argv uuid not found',
      };
    }
    return {
      uuid: best.uuid,
      status: 'ok',
      source: 'transcript',
      transcript: best.path,
      note: `argv uuid ${p.argvUuid} is stale: a conversation created after start was written more recently`,
    };
  }
  if (best) return { uuid: best.uuid, status: 'ok', source: 'transcript', transcript: best.path };
  return { uuid: null, status: 'no-transcript', source: null, transcript: null };
}

// ---------------------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------------------

/**
 * @typedef {{cmd: string, usersFile: string, stateDir: string, keep: number, user: string|null,
 *   claudeBin: string, proc: string, snapshot: string|null, spawn: 'auto'|'scope'|'direct',
 *   json: boolean, dryRun: boolean, perPane: boolean, verbose: boolean, help: boolean}} Options
 */
class UsageError extends Error {}
class FatalError extends Error {}

export function usage() {
  return `usage: tmux-persist save|restore|status [options]
  --users-file FILE   roster export (default ${DEFAULTS.usersFile})
  --state-dir DIR     snapshots, one 0700 dir per user (default ${DEFAULTS.stateDir})
  --keep N            snapshots kept per user (default ${DEFAULTS.keep})
  --user NAME         only this roster user
  --claude-bin CMD    command run as "CMD --resume <uuid>" on restore (default claude)
  --proc DIR          procfs root (default /proc)
  --snapshot NAME     restore/status from this snapshot (file name, "last" or "boot")
  --spawn MODE        how restore starts a tmux server: auto|scope|direct (default auto)
  --dry-run           restore: print the plan only (same as status)
  --per-pane          restore: one tmux call per step, no batching (the path a failed batch
                      falls back to; for comparison and debugging)
  --json              status: machine-readable output
  -v, --verbose       debug logging`;
}

/** @param {string[]} argv @returns {Options} */
export function parseArgs(argv) {
  /** @type {Options} */
  const o = {
    cmd: '',
    usersFile: DEFAULTS.usersFile,
    stateDir: DEFAULTS.stateDir,
    keep: DEFAULTS.keep,
    user: null,
    claudeBin: DEFAULTS.claudeBin,
    proc: DEFAULTS.proc,
    snapshot: null,
    spawn: 'auto',
    json: false,
    dryRun: false,
    perPane: false,
    verbose: false,
    help: false,
  };
  const valued = new Set(['--users-file', '--state-dir', '--keep', '--user', '--claude-bin', '--proc', '--snapshot', '--spawn']);
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    /** @type {string|null} */
    let v = null;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (valued.has(a)) {
      if (v === null) {
        if (i + 1 >= argv.length) throw new UsageError(`${a} needs a value`);
        v = argv[++i];
      }
      switch (a) {
        case '--users-file': o.usersFile = v; break;
        case '--state-dir': o.stateDir = v; break;
        case '--keep':
          if (!/^[1-9][0-9]*$/.test(v)) throw new UsageError('--keep must be a positive integer');
          o.keep = Number(v);
          break;
        case '--user':
          if (!USER_RE.test(v)) throw new UsageError(`invalid user name ${JSON.stringify(v)}`);
          o.user = v;
          break;
        case '--claude-bin': if (!v) throw new UsageError('--claude-bin is empty'); o.claudeBin = v; break;
        case '--proc': o.proc = v; break;
        case '--snapshot': o.snapshot = v; break;
        case '--spawn':
          if (v !== 'auto' && v !== 'scope' && v !== 'direct') throw new UsageError('--spawn must be auto, scope or direct');
          o.spawn = v;
          break;
      }
      continue;
    }
    if (v !== null) throw new UsageError(`${a} takes no value`);
    if (a === '--json') o.json = true;
    else if (a === '--dry-run') o.dryRun = true;
    else if (a === '--per-pane') o.perPane = true;
    else if (a === '-v' || a === '--verbose') o.verbose = true;
    else if (a === '-h' || a === '--help') o.help = true;
    else if (!a.startsWith('-') && !o.cmd) o.cmd = a;
    else throw new UsageError(`unexpected argument ${JSON.stringify(a)}`);
  }
  if (!o.help && !['save', 'restore', 'status'].includes(o.cmd)) throw new UsageError(o.cmd ? `unknown command ${o.cmd}` : 'missing command');
  return o;
}

// ---------------------------------------------------------------------------------------
// users
// ---------------------------------------------------------------------------------------

/** @typedef {{name: string, uid: number, gid: number, home: string, shell: string}} User */

/**
 * Active, opted-in roster users, checked against the passwd database.
 * @param {Options} o @returns {{users: User[], failed: string[]}}
 */
function loadUsers(o) {
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(o.usersFile, 'utf8'));
  } catch (e) {
    throw new FatalError(`cannot read users file ${o.usersFile}: ${errMsg(e)}`);
  }
  if (!doc || doc.version !== 1 || !Array.isArray(doc.users)) throw new FatalError(`users file ${o.usersFile}: expected {"version": 1, "users": [...]}`);
  /** @type {{name: string, uid: number}[]} */
  const wanted = [];
  for (const u of doc.users) {
    if (!u || typeof u.name !== 'string' || !USER_RE.test(u.name) || !Number.isInteger(u.uid)) {
      log('warning', 'ignoring malformed users.json entry', { name: u && u.name });
      continue;
    }
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

// ---------------------------------------------------------------------------------------
// tmux as the user
// ---------------------------------------------------------------------------------------

/** @param {User} u */
function userEnv(u) {
  /** @type {Record<string, string>} */
  const env = {
    HOME: u.home,
    USER: u.name,
    LOGNAME: u.name,
    SHELL: u.shell,
    PATH: `${u.home}/.local/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games`,
    LANG: process.env.LANG && process.env.LANG !== 'C' && process.env.LANG !== 'POSIX' ? process.env.LANG : 'C.UTF-8',
  };
  if (process.env.TMUX_TMPDIR) env.TMUX_TMPDIR = process.env.TMUX_TMPDIR;
  return env;
}
/** @param {User} u */
function socketPath(u) {
  return `${process.env.TMUX_TMPDIR || '/tmp'}/tmux-${u.uid}/default`;
}

/**
 * No server can be running when the user's socket does not exist: then no client is started
 * at all (root only lstat()s the path, as tmux computes it).
 * @param {User} u
 */
function noSocket(u) {
  try {
    fs.lstatSync(socketPath(u));
    return false;
  } catch (e) {
    return /** @type {NodeJS.ErrnoException} */ (e).code === 'ENOENT';
  }
}

/**
 * interrupted: the client was killed (timeout, signal) or could not be spawned, so what the
 * server did with the commands it was sent is unknown.
 * @typedef {{ok: boolean, noServer: boolean, interrupted: boolean, stdout: string, stderr: string}} TmuxResult
 * @typedef {{status: number|null, signal: string|null, error?: Error|null, stdout: string, stderr: string}} Spawned
 */
/** tmux clients started per user in this run (restore logs it as tmuxCalls=) @type {Map<string, number>} */
const CALLS = new Map();
/** @param {User} u */
function countCall(u) {
  CALLS.set(u.name, (CALLS.get(u.name) || 0) + 1);
}
/** how many users are worked on at once (clients, servers, fsyncs); --per-pane: 1 */
const PARALLEL = 8;
/**
 * Run `tasks` with at most n at a time; results in order.
 * @template T @param {(() => Promise<T>)[]} tasks @param {number} n @returns {Promise<T[]>}
 */
async function inParallel(tasks, n) {
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

/** spawn options of a tmux client run as the user (uid/gid switched by the spawn, clean environment) @param {User} u */
function clientOpts(u) {
  return { uid: u.uid, gid: u.gid, env: userEnv(u), cwd: '/', stdio: /** @type {['ignore', 'pipe', 'pipe']} */ (['ignore', 'pipe', 'pipe']) };
}
const CLIENT_TIMEOUT = 20_000;
const START_TIMEOUT = 30_000;
const MAX_OUTPUT = 64 << 20;
/**
 * Output and exit of a child started with spawn (the asynchronous twin of spawnSync's result).
 * @param {import('node:child_process').ChildProcess} child @returns {Promise<Spawned>}
 */
function collect(child) {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    /** @type {Error|null} */
    let error = null;
    if (child.stdout) {
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (/** @type {string} */ d) => {
        if (stdout.length + d.length > MAX_OUTPUT) {
          error = error || new Error('output too large');
          child.kill('SIGKILL');
        } else stdout += d;
      });
    }
    if (child.stderr) {
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (/** @type {string} */ d) => {
        if (stderr.length < 1 << 20) stderr += d;
      });
    }
    child.on('error', (e) => {
      error = error || e;
    });
    child.on('close', (status, signal) => resolve({ status, signal, error, stdout, stderr }));
  });
}
/**
 * @param {User} u @param {string[]} args @param {number} t0 @param {Spawned} r @param {boolean} start
 * @returns {TmuxResult}
 */
function tmuxResult(u, args, t0, r, start) {
  const stderr = ((r.stderr || '') + (r.error ? errMsg(r.error) : '')).trim();
  const noServer = !start && /no server running on|error connecting to|server exited unexpectedly/.test(stderr);
  if (LOGCFG.verbose) {
    const commands = args.filter((a) => a === ';').length + 1;
    log('debug', start ? 'tmux client (server start)' : 'tmux client', { user: u.name, command: args[0], commands, ms: Math.round(performance.now() - t0), status: r.status });
  }
  return { ok: r.status === 0 && !r.error, noServer, interrupted: !!(r.error || r.signal), stdout: r.stdout || '', stderr };
}

/**
 * Run one tmux client as the user, synchronously (--per-pane: the path without batching).
 * @param {User} u @param {string[]} args @returns {TmuxResult}
 */
function tmuxAs(u, args) {
  countCall(u);
  const t0 = performance.now();
  // The client runs as the user, but it is still root that picks the program: /usr/bin/tmux,
  // never a `tmux` found through the user's PATH.
  const r = spawnSync(trustedBin('tmux'), ['-u', ...args], { ...clientOpts(u), encoding: 'utf8', timeout: CLIENT_TIMEOUT, maxBuffer: MAX_OUTPUT });
  return tmuxResult(u, args, t0, r, false);
}
/**
 * Run one tmux client as the user; the same program, user and environment as tmuxAs, without
 * blocking (the clients of several users run at once).
 * @param {User} u @param {string[]} args @returns {Promise<TmuxResult>}
 */
async function tmuxAsync(u, args) {
  countCall(u);
  const t0 = performance.now();
  const r = await collect(spawn(trustedBin('tmux'), ['-u', ...args], { ...clientOpts(u), timeout: CLIENT_TIMEOUT }));
  return tmuxResult(u, args, t0, r, false);
}

/** @param {Options} o */
function useScope(o) {
  if (o.spawn === 'scope') return true;
  if (o.spawn === 'direct') return false;
  return fs.existsSync('/run/systemd/system');
}

/**
 * The command that starts the user's tmux server with its first session(s): runuser
 * (initgroups, pam_limits), inside a transient systemd scope when systemd runs, so that the
 * server is not part of the calling unit's cgroup.
 * @param {Options} o @param {User} u @param {string[]} args @returns {string[]}
 */
function serverStartCommand(o, u, args) {
  // Root runs systemd-run and runuser only: absolute paths, root's own environment. The
  // user's environment is handed over by /usr/bin/env, which runuser already runs AS the
  // user, so no program the user controls ever runs as root.
  const userEnvArgs = Object.entries(userEnv(u)).map(([k, v]) => `${k}=${v}`);
  const inner = [trustedBin('runuser'), '-u', u.name, '--', trustedBin('env'), '-i', ...userEnvArgs, trustedBin('tmux'), '-u', ...args];
  if (!useScope(o)) return inner;
  const unit = `tmux-persist-${u.name.replace(/[^A-Za-z0-9_-]/g, '_')}-${Date.now().toString(36)}.scope`;
  return [
    trustedBin('systemd-run'), '--scope', '--quiet', '--collect',
    `--unit=${unit}`, '--slice=tmux-persist.slice',
    // at shutdown a running save is stopped before this server is (stop order is reversed)
    '--property=Before=tmux-persist-save.service',
    `--description=tmux server of ${u.name} (restored by tmux-persist)`,
    '--', ...inner,
  ];
}
/** Root's side of a server start: root's fixed environment, cwd / */
const START_OPTS = Object.freeze({ cwd: '/', stdio: /** @type {['ignore', 'pipe', 'pipe']} */ (['ignore', 'pipe', 'pipe']) });
/**
 * Start the user's tmux server (serverStartCommand), synchronously (--per-pane).
 * @param {Options} o @param {User} u @param {string[]} args @returns {TmuxResult}
 */
function tmuxStartServer(o, u, args) {
  const cmd = serverStartCommand(o, u, args);
  log('debug', 'starting tmux server', { user: u.name, via: cmd[0] });
  countCall(u);
  const t0 = performance.now();
  const r = spawnSync(cmd[0], cmd.slice(1), { ...START_OPTS, env: { ...ROOT_ENV }, encoding: 'utf8', timeout: START_TIMEOUT, maxBuffer: MAX_OUTPUT });
  return tmuxResult(u, args, t0, r, true);
}
/**
 * Start the user's tmux server (serverStartCommand) without blocking.
 * @param {Options} o @param {User} u @param {string[]} args @returns {Promise<TmuxResult>}
 */
async function tmuxStartServerAsync(o, u, args) {
  const cmd = serverStartCommand(o, u, args);
  log('debug', 'starting tmux server', { user: u.name, via: cmd[0] });
  countCall(u);
  const t0 = performance.now();
  const r = await collect(spawn(cmd[0], cmd.slice(1), { ...START_OPTS, env: { ...ROOT_ENV }, timeout: START_TIMEOUT }));
  return tmuxResult(u, args, t0, r, true);
}
/**
 * @typedef {{as: (u: User, args: string[]) => Promise<TmuxResult>,
 *   start: (o: Options, u: User, args: string[]) => Promise<TmuxResult>}} Client
 */
/** @type {Client} one client at a time, blocking (--per-pane) */
const SYNC_CLIENT = { as: async (u, args) => tmuxAs(u, args), start: async (o, u, args) => tmuxStartServer(o, u, args) };
/** @type {Client} */
const ASYNC_CLIENT = { as: tmuxAsync, start: tmuxStartServerAsync };

const NONCE = crypto.randomBytes(6).toString('hex');
const FSEP = `|tp${NONCE}|`;
const RSEP = `~tp${NONCE}~`;
/** @param {string[]} fields */
function fmt(fields) {
  return fields.map((f) => `#{${f}}`).join(FSEP) + RSEP;
}
/** @param {string} out @param {number} n @returns {string[][]} */
function parseRecords(out, n) {
  /** @type {string[][]} */
  const recs = [];
  const chunks = out.split(RSEP + '\n');
  if (chunks[chunks.length - 1] !== '') throw new Error('tmux output not terminated');
  chunks.pop();
  for (const c of chunks) {
    const f = c.split(FSEP);
    if (f.length !== n) throw new Error(`tmux record with ${f.length} fields, expected ${n}`);
    recs.push(f);
  }
  return recs;
}

const PANE_FIELDS = [
  'session_id', 'session_name', 'session_grouped', 'session_group',
  'window_id', 'window_index', 'window_name', 'automatic-rename', 'window_layout', 'window_active',
  'pane_id', 'pane_index', 'pane_active', 'pane_pid', 'pane_dead', 'pane_current_path',
  'base-index',
];
/**
 * @typedef {{sessionId: string, session: string, group: string|null, windowId: string,
 *   windowIndex: number, windowName: string, autoName: boolean, layout: string,
 *   windowActive: boolean, paneId: string, paneIndex: number, paneActive: boolean,
 *   panePid: number, paneDead: boolean, tmuxPath: string, baseIndex: number|null}} PaneRow
 */
/** @param {User} u @returns {Promise<{state: 'ok'|'none'|'error', rows: PaneRow[], error?: string}>} */
async function listPanes(u) {
  if (noSocket(u)) return { state: 'none', rows: [] };
  const r = await tmuxAsync(u, ['list-panes', '-a', '-F', fmt(PANE_FIELDS)]);
  if (!r.ok) return r.noServer ? { state: 'none', rows: [] } : { state: 'error', rows: [], error: r.stderr };
  try {
    const rows = parseRecords(r.stdout, PANE_FIELDS.length).map((f) => ({
      sessionId: f[0],
      session: f[1],
      group: f[2] === '1' && f[3] ? f[3] : null,
      windowId: f[4],
      windowIndex: Number(f[5]),
      windowName: f[6],
      autoName: f[7] === '1' || f[7] === 'on',
      layout: f[8],
      windowActive: f[9] === '1',
      paneId: f[10],
      paneIndex: Number(f[11]),
      paneActive: f[12] === '1',
      panePid: Number(f[13]),
      paneDead: f[14] === '1',
      tmuxPath: f[15],
      baseIndex: /^[0-9]+$/.test(f[16]) ? Number(f[16]) : null,
    }));
    return { state: rows.length ? 'ok' : 'none', rows };
  } catch (e) {
    return { state: 'error', rows: [], error: errMsg(e) };
  }
}

/**
 * @typedef {{state: string, names: Set<string>, ids: Map<string, string>, error?: string}} LiveSessions
 *   names as tmux stores them; ids: name -> session id ($N)
 */
/** @param {User} u @returns {Promise<LiveSessions>} */
async function listSessions(u) {
  if (noSocket(u)) return { state: 'none', names: new Set(), ids: new Map() };
  const r = await tmuxAsync(u, ['list-sessions', '-F', fmt(['session_name', 'session_id'])]);
  if (!r.ok) return r.noServer ? { state: 'none', names: new Set(), ids: new Map() } : { state: 'error', names: new Set(), ids: new Map(), error: r.stderr };
  try {
    const recs = parseRecords(r.stdout, 2);
    return { state: 'ok', names: new Set(recs.map((f) => f[0])), ids: new Map(recs.map((f) => [f[0], f[1]])) };
  } catch (e) {
    return { state: 'error', names: new Set(), ids: new Map(), error: errMsg(e) };
  }
}

// ---------------------------------------------------------------------------------------
// /proc: one pass
// ---------------------------------------------------------------------------------------

/**
 * @typedef {{pid: number, ppid: number, startMs: number, argv: string[], exe: string}} Proc
 * @typedef {{pid: number, uid: number, startMs: number, argv: string[], cwd: string,
 *   configDir: string, argvUuid: string|null, argvSource: string|null}} ClaudeProc
 */
/** @param {string} p */
function readOr(p) {
  try {
    return fs.readFileSync(p);
  } catch {
    return null;
  }
}
/** @param {string} p */
function readlinkOr(p) {
  try {
    return fs.readlinkSync(p);
  } catch {
    return '';
  }
}

/** one buffer for every /proc file of a scan (no per-file allocation, no fstat) */
let procBuf = Buffer.allocUnsafe(1 << 16);
/**
 * The whole content of a small (/proc) file as a string, or null if unreadable.
 * @param {string} p @param {BufferEncoding} enc
 */
function readProcFile(p, enc) {
  let fd;
  try {
    fd = fs.openSync(p, 'r');
  } catch {
    return null;
  }
  try {
    let len = 0;
    for (;;) {
      if (len === procBuf.length) {
        const bigger = Buffer.allocUnsafe(procBuf.length * 2);
        procBuf.copy(bigger, 0, 0, len);
        procBuf = bigger;
      }
      const k = fs.readSync(fd, procBuf, len, procBuf.length - len, null);
      if (!k) break;
      len += k;
    }
    return procBuf.toString(enc, 0, len);
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Read every process once: stat (ppid, start), cmdline and exe.
 * @param {string} procRoot @returns {Map<number, Proc>}
 */
function scanProc(procRoot) {
  let names;
  try {
    names = fs.readdirSync(procRoot);
  } catch (e) {
    throw new FatalError(`cannot read ${procRoot}: ${errMsg(e)}`);
  }
  const up = readOr(path.join(procRoot, 'uptime'));
  if (!up) throw new FatalError(`cannot read ${procRoot}/uptime`);
  const bootMs = Date.now() - parseFloat(up.toString()) * 1000;
  /** @type {Map<number, Proc>} */
  const procs = new Map();
  for (const name of names) {
    if (!/^[0-9]+$/.test(name)) continue;
    const dir = `${procRoot}/${name}`;
    const s = readProcFile(`${dir}/stat`, 'latin1'); // only numbers after the last ')' are used
    if (!s) continue;
    const close = s.lastIndexOf(')');
    if (close < 0) continue;
    const f = s.slice(close + 2).split(' ');
    const cmd = readProcFile(`${dir}/cmdline`, 'utf8');
    if (!cmd) continue; // kernel thread or zombie
    const argv = cmd.split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    procs.set(Number(name), {
      pid: Number(name),
      ppid: Number(f[1]),
      startMs: bootMs + (Number(f[19]) * 1000) / CLK_TCK,
      argv,
      exe: readlinkOr(`${dir}/exe`),
    });
  }
  return procs;
}

/** CLAUDE_CONFIG_DIR of a process, if readable; nothing else of the environment is kept. */
/** @param {string} procRoot @param {number} pid */
function claudeConfigDirOf(procRoot, pid) {
  const env = readOr(path.join(procRoot, String(pid), 'environ'));
  if (!env) return null;
  const key = Buffer.from('CLAUDE_CONFIG_DIR=');
  let start = 0;
  while (start < env.length) {
    let end = env.indexOf(0, start);
    if (end < 0) end = env.length;
    if (end - start > key.length && env.subarray(start, start + key.length).equals(key)) {
      const v = env.subarray(start + key.length, end).toString('utf8');
      return v.startsWith('/') ? v : null;
    }
    start = end + 1;
  }
  return null;
}

/**
 * All top-level claude processes (not below another claude) with their facts.
 * @param {string} procRoot @param {Map<number, Proc>} procs @param {Map<number, User>} usersByUid
 * @returns {ClaudeProc[]}
 */
function findClaudes(procRoot, procs, usersByUid) {
  /** @type {Set<number>} */
  const isClaude = new Set();
  for (const p of procs.values()) if (isClaudeProcess(p.argv, p.exe)) isClaude.add(p.pid);
  /** @type {ClaudeProc[]} */
  const out = [];
  for (const pid of isClaude) {
    const p = /** @type {Proc} */ (procs.get(pid));
    // nested claude (a helper run by a claude) and wrapper uuid, walking up to init
    let nested = false;
    let wrapUuid = null;
    for (let q = procs.get(p.ppid), guard = 0; q && q.pid > 1 && guard < 64; q = procs.get(q.ppid), guard++) {
      if (isClaude.has(q.pid)) {
        nested = true;
        break;
      }
      if (!wrapUuid && q.argv.length >= 6 && q.argv[3] === RESUME_MARK && UUID_RE.test(q.argv[5])) wrapUuid = q.argv[5].toLowerCase();
    }
    if (nested) continue;
    let uid;
    try {
      uid = fs.statSync(path.join(procRoot, String(pid))).uid;
    } catch {
      continue;
    }
    const u = usersByUid.get(uid);
    if (!u) continue;
    const cwd = readlinkOr(path.join(procRoot, String(pid), 'cwd'));
    if (!cwd) continue;
    const own = argvUuid(p.argv);
    const configDir = confinedConfigDir(claudeConfigDirOf(procRoot, pid), u);
    out.push({
      pid,
      uid,
      startMs: p.startMs,
      argv: p.argv,
      cwd,
      configDir,
      argvUuid: own || wrapUuid,
      argvSource: own ? 'argv' : wrapUuid ? 'restore-wrapper' : null,
    });
  }
  return out;
}

/**
 * Reads a directory only if it really is `uid`'s: the directory is opened once and fstat'ed,
 * its entries are listed and lstat'ed through /proc/self/fd/<fd>, so a symlink or a swap the
 * user makes anywhere on the way can never make root list or stat another user's files.
 * Entries that are not regular files owned by `uid` are left out.
 * @param {string} dir @param {number} uid @param {(name: string) => boolean} want
 * @returns {{name: string, st: fs.Stats}[] | null} null: missing, unreadable or not the user's
 */
export function readOwnedDir(dir, uid, want) {
  let fd;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isDirectory() || st.uid !== uid) {
      log('warning', 'directory is not owned by the user; not read', { dir, uid, owner: st.uid });
      return null;
    }
    const base = `/proc/self/fd/${fd}`;
    /** @type {{name: string, st: fs.Stats}[]} */
    const out = [];
    for (const name of fs.readdirSync(base)) {
      if (!want(name)) continue;
      try {
        const e = fs.lstatSync(`${base}/${name}`);
        if (e.uid === uid) out.push({ name, st: e });
      } catch {
        /* vanished */
      }
    }
    return out;
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The Claude config dir a process of `u` names in CLAUDE_CONFIG_DIR, only when it lies inside
 * u's own home (lexically and after symlinks); otherwise u's ~/.claude, with a log line.
 * @param {string|null} v @param {{name: string, home: string}} u @returns {string}
 */
export function confinedConfigDir(v, u) {
  const def = path.join(u.home, '.claude');
  if (!v) return def;
  const inside = (/** @type {string} */ p, /** @type {string} */ home) => p === home || p.startsWith(home.endsWith('/') ? home : home + '/');
  const lexical = path.resolve(v);
  let real = lexical;
  let realHome = u.home;
  try {
    realHome = fs.realpathSync(u.home);
    real = fs.realpathSync(lexical);
  } catch {
    /* missing: the lexical check decides; lookups below are owner-checked anyway */
  }
  if (inside(lexical, u.home) && inside(real, realHome)) return lexical;
  log('warning', 'CLAUDE_CONFIG_DIR outside the home ignored; using ~/.claude', { user: u.name, configDir: v });
  return def;
}

/** Transcript lookups of one user (uid), cached for one run; every read is owner-checked. */
class Transcripts {
  /** @param {number} uid */
  constructor(uid) {
    this.uid = uid;
    /** @type {Map<string, Transcript[]>} */
    this.dirs = new Map();
    /** @type {Map<string, string[]>} */
    this.projects = new Map();
  }
  /** @param {string} dir @returns {Transcript[]} */
  list(dir) {
    const hit = this.dirs.get(dir);
    if (hit) return hit;
    /** @type {Transcript[]} */
    const out = [];
    const entries = readOwnedDir(dir, this.uid, (n) => n.endsWith('.jsonl') && UUID_RE.test(n.slice(0, -6))) || [];
    for (const { name, st } of entries) {
      if (!st.isFile()) continue;
      out.push({ uuid: name.slice(0, -6).toLowerCase(), path: path.join(dir, name), birthMs: st.birthtimeMs || st.mtimeMs, mtimeMs: st.mtimeMs });
    }
    this.dirs.set(dir, out);
    return out;
  }
  /** @param {string} configDir */
  projectDirs(configDir) {
    const hit = this.projects.get(configDir);
    if (hit) return hit;
    const names = (readOwnedDir(path.join(configDir, 'projects'), this.uid, () => true) || []).filter((e) => e.st.isDirectory()).map((e) => e.name);
    this.projects.set(configDir, names);
    return names;
  }
  /**
   * The project dir Claude uses for cwd: the exact slug, or for slugs over 200 chars the
   * single existing dir that starts with the truncated slug (Claude appends a hash).
   * @param {string} configDir @param {string} cwd
   */
  projectDir(configDir, cwd) {
    const slug = slugify(cwd);
    const exact = path.join(configDir, 'projects', slug);
    if (slug.length <= 200) return exact;
    if (this.projectDirs(configDir).includes(slug)) return exact;
    const pre = slug.slice(0, 200);
    const m = this.projectDirs(configDir).filter((n) => n.startsWith(pre) && n !== slug);
    return m.length === 1 ? path.join(configDir, 'projects', m[0]) : exact;
  }
  /** @param {string} configDir @param {string} cwd @param {string} uuid @returns {Transcript|null} */
  find(configDir, cwd, uuid) {
    const dir = this.projectDir(configDir, cwd);
    const t = this.list(dir).find((x) => x.uuid === uuid);
    if (t) return t;
    for (const n of this.projectDirs(configDir)) {
      const hit = this.list(path.join(configDir, 'projects', n)).find((x) => x.uuid === uuid);
      if (hit) return hit;
    }
    return null;
  }
}

/**
 * Decide the conversation of every top-level claude of one user.
 * @param {ClaudeProc[]} claudes (one user's) @param {Transcripts} tx
 * @returns {Map<number, UuidDecision>}
 */
function resolveClaudes(claudes, tx) {
  /** @type {Map<string, number>} */
  const perDir = new Map();
  const dirOf = (/** @type {ClaudeProc} */ c) => tx.projectDir(c.configDir, c.cwd);
  for (const c of claudes) perDir.set(dirOf(c), (perDir.get(dirOf(c)) || 0) + 1);
  /** @type {Map<number, UuidDecision>} */
  const out = new Map();
  for (const c of claudes) {
    const dir = dirOf(c);
    out.set(
      c.pid,
      decideUuid({
        startMs: c.startMs,
        argvUuid: c.argvUuid,
        argvSource: c.argvSource,
        shared: (perDir.get(dir) || 0) > 1,
        transcripts: tx.list(dir),
        argvTranscript: c.argvUuid ? tx.find(c.configDir, c.cwd, c.argvUuid) : null,
      }),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// snapshots
// ---------------------------------------------------------------------------------------

/**
 * @typedef {{pid: number, startedAt: string, uuid: string|null, status: string,
 *   source: string|null, transcript: string|null, configDir: string, cwd: string,
 *   note?: string, candidates?: string[]}} ClaudeRec
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
function stateDirOf(o, name) {
  return name ? path.join(o.stateDir, name) : o.stateDir;
}
/**
 * A root-owned directory nobody else can read or write. A user's dir is exactly 0700; the
 * state root may keep search permission (the host component creates it 0711).
 * @param {string} dir @param {boolean} [root]
 */
function ensurePrivateDir(dir, root = false) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (st.uid !== 0 || st.gid !== 0) fs.chownSync(dir, 0, 0);
  const mode = st.mode & 0o7777;
  const want = root ? mode & 0o711 : 0o700;
  if (mode !== want) fs.chmodSync(dir, want);
}
// The fsyncs below are asynchronous so that the users' files are made durable at once (one
// journal commit serves many); the order per file is unchanged: data fsync'ed, then renamed,
// then the directory fsync'ed, and `last` only after that.
/** @param {string} dir */
async function fsyncDir(dir) {
  const h = await fsp.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
const tmpName = (/** @type {string} */ name) => `.${name}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
/** temp + fsync + rename + dir fsync @param {string} dir @param {string} name @param {string} data */
export async function writeFileAtomic(dir, name, data) {
  const tmp = path.join(dir, tmpName(name));
  const h = await fsp.open(tmp, 'wx', 0o600);
  try {
    await h.writeFile(data);
    await h.sync();
  } catch (e) {
    await h.close();
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  await h.close();
  fs.renameSync(tmp, path.join(dir, name));
  await fsyncDir(dir);
}
/** @param {string} dir @param {string} name @param {string} target */
async function symlinkAtomic(dir, name, target) {
  const tmp = path.join(dir, tmpName(name));
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, path.join(dir, name));
  await fsyncDir(dir);
}
/** @param {string} dir @param {string} link @returns {string|null} */
function pointer(dir, link) {
  const t = readlinkOr(path.join(dir, link));
  return t && /^snap-[A-Za-z0-9.-]+\.json$/.test(t) ? t : null;
}
/** @param {string} dir @returns {string[]} newest first */
function snapshotFiles(dir) {
  let names = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => /^snap-[A-Za-z0-9.-]+\.json$/.test(n)).sort().reverse();
}
/** @param {string} dir @param {string} file @returns {Snapshot} */
function readSnapshot(dir, file) {
  const doc = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  if (!doc || doc.format !== SNAPSHOT_FORMAT || !Array.isArray(doc.sessions)) throw new Error(`${file}: not a ${SNAPSHOT_FORMAT} snapshot`);
  return doc;
}
/**
 * The snapshot to restore from: --snapshot, else `last`, else the newest readable file.
 * @param {Options} o @param {string} dir @returns {{file: string, snap: Snapshot}|null}
 */
function loadSnapshot(o, dir) {
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
function canonical(s) {
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
async function prune(dir, keep) {
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
    if (!/^\..+\.tmp-[0-9]+-[0-9a-f]+$/.test(n)) continue;
    const pid = Number(n.split('.tmp-')[1].split('-')[0]);
    if (pid !== process.pid && !fs.existsSync(`/proc/${pid}`)) {
      fs.rmSync(path.join(dir, n), { force: true });
      removed++;
    }
  }
  if (removed) await fsyncDir(dir);
}

// ---------------------------------------------------------------------------------------
// lock and systemd state
// ---------------------------------------------------------------------------------------

/** @param {string} stateRoot @param {number} waitMs @returns {(() => void)|null} */
function acquireLock(stateRoot, waitMs) {
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
function systemdRunning() {
  return fs.existsSync('/run/systemd/system');
}
/** @returns {string|null} why saving now would be wrong (shutdown or restore in progress) */
function saveBlocked() {
  if (!systemdRunning()) return null;
  const st = rootRun('systemctl', ['is-system-running']);
  if ((st.stdout || '').trim() === 'stopping') return 'system shutdown in progress';
  const rs = rootRun('systemctl', ['is-active', 'tmux-persist-restore.service']);
  if ((rs.stdout || '').trim() === 'activating') return 'tmux-persist-restore.service is running';
  return null;
}

// ---------------------------------------------------------------------------------------
// save
// ---------------------------------------------------------------------------------------

/** @param {PaneRow[]} rows @param {Map<string, ClaudeRec>} claudeByPane @param {string} procRoot */
function buildSessions(rows, claudeByPane, procRoot) {
  /** @type {Map<string, SessionRec>} */
  const sessions = new Map();
  /** @type {Map<string, WindowRec>} */
  const windows = new Map();
  for (const r of rows) {
    let s = sessions.get(r.sessionId);
    if (!s) {
      s = { name: r.session, group: r.group, windows: [] };
      if (r.baseIndex !== null) s.baseIndex = r.baseIndex;
      sessions.set(r.sessionId, s);
    }
    const wkey = `${r.sessionId}/${r.windowId}`;
    let w = windows.get(wkey);
    if (!w) {
      w = { index: r.windowIndex, name: r.windowName, autoName: r.autoName, layout: r.layout, active: r.windowActive, panes: [] };
      windows.set(wkey, w);
      s.windows.push(w);
    }
    const claude = claudeByPane.get(r.paneId) || null;
    let cwd = claude ? claude.cwd : readlinkOr(path.join(procRoot, String(r.panePid), 'cwd'));
    if (!cwd) cwd = r.tmuxPath;
    /** @type {PaneRec} */
    const pane = { index: r.paneIndex, active: r.paneActive, cwd, pid: r.panePid, claude };
    if (r.paneDead) pane.dead = true;
    w.panes.push(pane);
  }
  const list = [...sessions.values()];
  for (const s of list) {
    s.windows.sort((a, b) => a.index - b.index);
    for (const w of s.windows) w.panes.sort((a, b) => a.index - b.index);
  }
  return list;
}

/** @param {Options} o @returns {Promise<number>} */
async function cmdSave(o) {
  const why = saveBlocked();
  if (why) {
    log('notice', 'not saving', { reason: why });
    return EXIT.SKIPPED;
  }
  const { users, failed } = loadUsers(o);
  try {
    ensurePrivateDir(o.stateDir, true);
  } catch (e) {
    throw new FatalError(`state dir ${o.stateDir}: ${errMsg(e)}`);
  }
  const release = acquireLock(o.stateDir, 5_000);
  if (!release) {
    log('notice', 'another tmux-persist run holds the lock; not saving');
    return EXIT.SKIPPED;
  }
  try {
    let bad = failed.length;
    // 1. ask every tmux server first (all at once), 2. one /proc pass, 3. resolve, 4. write
    /** @type {Map<string, PaneRow[]>} */
    const panes = new Map();
    const listed = await inParallel(users.map((u) => () => listPanes(u)), PARALLEL);
    for (const [k, u] of users.entries()) {
      const r = listed[k];
      if (r.state === 'error') {
        log('err', 'cannot list tmux panes; previous snapshot kept', { user: u.name, error: r.error });
        bad++;
      } else if (r.state === 'none') {
        log('info', 'no tmux server or no sessions; previous snapshot kept', { user: u.name, socket: socketPath(u) });
      } else panes.set(u.name, r.rows);
    }
    if (!panes.size) return bad ? EXIT.PARTIAL : EXIT.OK;
    const procs = scanProc(o.proc);
    const usersByUid = new Map(users.filter((u) => panes.has(u.name)).map((u) => [u.uid, u]));
    const claudes = findClaudes(o.proc, procs, usersByUid);
    /** @type {{u: User, snap: Snapshot}[]} */
    const built = [];
    for (const u of users) {
      const rows = panes.get(u.name);
      if (!rows) continue;
      const tx = new Transcripts(u.uid);
      try {
        const mine = claudes.filter((c) => c.uid === u.uid);
        const decisions = resolveClaudes(mine, tx);
        /** @type {Map<number, string>} pane pid -> pane id */
        const panePids = new Map(rows.map((r) => [r.panePid, r.paneId]));
        /** @type {Map<string, ClaudeRec>} */
        const byPane = new Map();
        /** @type {Set<string>} */
        const multi = new Set();
        for (const c of mine) {
          let paneId = null;
          for (let q = procs.get(c.pid), g = 0; q && g < 64; q = procs.get(q.ppid), g++) {
            const hit = panePids.get(q.pid);
            if (hit) {
              paneId = hit;
              break;
            }
          }
          if (!paneId) continue;
          const d = /** @type {UuidDecision} */ (decisions.get(c.pid));
          /** @type {ClaudeRec} */
          const rec = {
            pid: c.pid,
            startedAt: new Date(c.startMs).toISOString(),
            uuid: d.uuid,
            status: d.status,
            source: d.source,
            transcript: d.transcript,
            configDir: c.configDir,
            cwd: c.cwd,
          };
          if (d.note) rec.note = d.note;
          if (d.candidates) rec.candidates = d.candidates;
          if (byPane.has(paneId)) multi.add(paneId);
          else byPane.set(paneId, rec);
        }
        for (const id of multi) {
          const rec = /** @type {ClaudeRec} */ (byPane.get(id));
          byPane.set(id, { ...rec, uuid: null, status: 'ambiguous', source: null, transcript: null, note: 'several claude processes in one pane' });
        }
        /** @type {Snapshot} */
        const snap = {
          format: SNAPSHOT_FORMAT,
          createdAt: new Date().toISOString(),
          host: os.hostname(),
          user: u.name,
          uid: u.uid,
          home: u.home,
          socket: socketPath(u),
          sessions: buildSessions(rows, byPane, o.proc),
        };
        built.push({ u, snap });
      } catch (e) {
        log('err', 'save failed; previous snapshot kept', { user: u.name, error: errMsg(e) });
        bad++;
      }
    }
    /** @type {{u: User, file: string, stats: Record<string, number>}[]} */
    const pending = [];
    await inParallel(
      built.map(({ u, snap }) => async () => {
        try {
          const file = await prepareSnapshot(o, u, snap);
          const stats = countSnap(snap);
          if (!file) {
            log('info', 'snapshot unchanged, not rewritten', { user: u.name, ...stats });
            return;
          }
          pending.push({ u, file, stats });
          // said once per change, not every 5 minutes
          for (const s of snap.sessions)
            for (const w of s.windows)
              for (const p of w.panes)
                if (p.claude && p.claude.status !== 'ok')
                  log('notice', 'claude pane without a resumable conversation', { user: u.name, session: s.name, window: w.index, pane: p.index, status: p.claude.status, cwd: p.cwd });
        } catch (e) {
          log('err', 'save failed; previous snapshot kept', { user: u.name, error: errMsg(e) });
          bad++;
        }
      }),
      PARALLEL,
    );
    // the state may have been taken while things were being torn down: check once more
    // before any `last` moves, and drop the new files if a shutdown began meanwhile
    const why = pending.length ? saveBlocked() : null;
    await inParallel(
      pending.map((p) => async () => {
        const dir = stateDirOf(o, p.u.name);
        try {
          if (why) {
            fs.rmSync(path.join(dir, p.file), { force: true });
            return;
          }
          await symlinkAtomic(dir, 'last', p.file);
          await prune(dir, o.keep);
          log('info', 'snapshot saved', { user: p.u.name, file: p.file, ...p.stats });
        } catch (e) {
          log('err', 'save failed; previous snapshot kept', { user: p.u.name, error: errMsg(e) });
          bad++;
        }
      }),
      PARALLEL,
    );
    if (why) {
      log('notice', 'not saving', { reason: why });
      return EXIT.SKIPPED;
    }
    return bad ? EXIT.PARTIAL : EXIT.OK;
  } finally {
    release();
  }
}

/** @param {Snapshot} s */
function countSnap(s) {
  let windows = 0;
  let panes = 0;
  let claude = 0;
  for (const se of s.sessions)
    for (const w of se.windows) {
      windows++;
      for (const p of w.panes) {
        panes++;
        if (p.claude && p.claude.uuid) claude++;
      }
    }
  return { sessions: s.sessions.length, windows, panes, claude };
}

/**
 * Write the snapshot file (not yet `last`), unless it equals `last`.
 * @param {Options} o @param {User} u @param {Snapshot} snap @returns {Promise<string|null>} file name
 */
async function prepareSnapshot(o, u, snap) {
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
  const stamp = snap.createdAt.replace(/[-:]/g, '');
  const file = `snap-${stamp}-${crypto.randomBytes(3).toString('hex')}.json`;
  await writeFileAtomic(dir, file, JSON.stringify(snap, null, 1) + '\n');
  return file;
}

// ---------------------------------------------------------------------------------------
// restore plan (shared by restore and status)
// ---------------------------------------------------------------------------------------

/**
 * @typedef {{index: number, cwd: string, active: boolean, action: 'claude'|'shell'|'skip',
 *   uuid?: string, reason?: string, configDir?: string}} PanePlan
 * @typedef {{index: number, name: string, autoName: boolean, layout: string, active: boolean,
 *   complete: boolean, panes: PanePlan[]}} WindowPlan
 * @typedef {{name: string, group: string|null, action: 'create'|'skip', reason?: string,
 *   joinGroup?: string, baseIndex?: number, windows: WindowPlan[]}} SessionPlan
 * @typedef {{user: string, snapshot: string|null, createdAt: string|null, server: string,
 *   sessions: SessionPlan[], error?: string}} UserPlan
 */

/** @param {string} p */
function isDir(p) {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * @param {User} u @param {{file: string, snap: Snapshot}|null} loaded
 * @param {{state: string, names: Set<string>}} live @param {Set<string>} running
 * @param {Transcripts} tx @returns {UserPlan}
 */
function planUser(u, loaded, live, running, tx) {
  /** @type {UserPlan} */
  const plan = {
    user: u.name,
    snapshot: loaded ? loaded.file : null,
    createdAt: loaded ? loaded.snap.createdAt : null,
    server: live.state === 'ok' ? 'running' : 'none',
    sessions: [],
  };
  if (!loaded) return plan;
  const claimed = new Set(running);
  /** @type {Map<string, string>} group -> session name that carries its windows */
  const groupHead = new Map();
  for (const s of loaded.snap.sessions) {
    if (s.group && live.names.has(s.name) && !groupHead.has(s.group)) groupHead.set(s.group, s.name);
  }
  for (const s of loaded.snap.sessions) {
    /** @type {SessionPlan} */
    const sp = { name: s.name, group: s.group || null, action: 'create', windows: [] };
    if (Number.isInteger(s.baseIndex)) sp.baseIndex = s.baseIndex;
    plan.sessions.push(sp);
    if (live.names.has(s.name)) {
      sp.action = 'skip';
      sp.reason = 'session exists';
      continue;
    }
    if (s.group && groupHead.has(s.group)) {
      sp.joinGroup = groupHead.get(s.group);
      continue;
    }
    for (const w of s.windows) {
      /** @type {WindowPlan} */
      const wp = { index: w.index, name: w.name, autoName: !!w.autoName, layout: w.layout, active: !!w.active, complete: true, panes: [] };
      for (const p of w.panes) {
        /** @type {PanePlan} */
        const pp = { index: p.index, cwd: p.cwd, active: !!p.active, action: 'shell' };
        if (!isDir(p.cwd)) {
          pp.action = 'skip';
          pp.reason = 'cwd missing';
        } else if (p.claude) {
          const c = p.claude;
          if (c.status === 'ok' && c.uuid) {
            const t = tx.find(confinedConfigDir(c.configDir || null, u), c.cwd || p.cwd, c.uuid);
            if (!t) {
              pp.action = 'skip';
              pp.reason = 'transcript missing';
              pp.uuid = c.uuid;
            } else if (claimed.has(c.uuid)) {
              pp.reason = 'conversation already running; shell instead';
              pp.uuid = c.uuid;
            } else {
              pp.action = 'claude';
              pp.uuid = c.uuid;
              const cd = confinedConfigDir(c.configDir || null, u);
              if (cd !== path.join(u.home, '.claude')) pp.configDir = cd;
              claimed.add(c.uuid);
            }
          } else if (c.status === 'ambiguous') {
            pp.reason = 'claude conversation was ambiguous (not guessed); shell instead';
          } else {
            pp.reason = 'claude had no transcript (never messaged); shell instead';
          }
        }
        wp.panes.push(pp);
      }
      wp.complete = wp.panes.every((p) => p.action !== 'skip');
      sp.windows.push(wp); // windows whose panes are all skipped are reported, not created
    }
    if (!sp.windows.some((w) => w.panes.some((p) => p.action !== 'skip'))) {
      sp.action = 'skip';
      sp.reason = 'nothing restorable (every pane skipped)';
    }
    if (sp.action === 'create' && s.group && !groupHead.has(s.group)) groupHead.set(s.group, s.name);
  }
  return plan;
}

/**
 * The uuids of every conversation a user is running now (any claude of the user, in or out
 * of tmux), by the same rules as save. Ambiguous ones are unknown and not included.
 * @param {ClaudeProc[]} claudes @param {Transcripts} tx
 */
function runningUuids(claudes, tx) {
  const set = new Set();
  for (const [, d] of resolveClaudes(claudes, tx)) if (d.uuid) set.add(d.uuid);
  for (const c of claudes) if (c.argvUuid) set.add(c.argvUuid);
  return set;
}

/**
 * @param {Options} o @param {User[]} users
 * @param {Map<string, LiveSessions>} [lives] filled with each user's live sessions (restore)
 * @returns {Promise<UserPlan[]>}
 */
async function planAll(o, users, lives) {
  const procs = scanProc(o.proc);
  const byUid = new Map(users.map((u) => [u.uid, u]));
  const claudes = findClaudes(o.proc, procs, byUid);
  const loads = users.map((u) => {
    /** @type {{file: string, snap: Snapshot}|null} */
    let loaded = null;
    /** @type {string|undefined} */
    let error;
    try {
      loaded = loadSnapshot(o, stateDirOf(o, u.name));
      if (loaded && (loaded.snap.user !== u.name || loaded.snap.uid !== u.uid)) throw new Error(`${loaded.file} belongs to ${loaded.snap.user}/${loaded.snap.uid}`);
    } catch (e) {
      loaded = null;
      error = errMsg(e);
    }
    return { loaded, error };
  });
  // every server at once
  /** @type {LiveSessions[]} */
  const live = await inParallel(
    users.map((u, k) => async () => (loads[k].loaded ? listSessions(u) : { state: 'unknown', names: new Set(), ids: new Map() })),
    PARALLEL,
  );
  /** @type {UserPlan[]} */
  const plans = [];
  for (const [k, u] of users.entries()) {
    const { loaded, error } = loads[k];
    if (lives) lives.set(u.name, live[k]);
    if (live[k].state === 'error') {
      plans.push({ user: u.name, snapshot: loaded && loaded.file, createdAt: null, server: 'error', sessions: [], error: `tmux: ${live[k].error}` });
      continue;
    }
    const tx = new Transcripts(u.uid);
    const plan = planUser(u, loaded, live[k], runningUuids(claudes.filter((c) => c.uid === u.uid), tx), tx);
    if (error) plan.error = error;
    plans.push(plan);
  }
  return plans;
}

// ---------------------------------------------------------------------------------------
// restore
// ---------------------------------------------------------------------------------------

/** @param {string} layout */
function layoutSize(layout) {
  const m = /^[0-9a-f]{4},([0-9]+)x([0-9]+),/.exec(layout || '');
  return m ? { x: Number(m[1]), y: Number(m[2]) } : null;
}
/**
 * Trailing argv of new-session/new-window/split-window for a pane: `-e CLAUDE_CONFIG_DIR=..`
 * when the conversation lives outside ~/.claude, then the resume wrapper (or nothing: shell).
 * @param {Options} o @param {PanePlan} p
 */
function paneCommand(o, p) {
  if (p.action !== 'claude' || !p.uuid) return [];
  const env = p.configDir ? ['-e', tmuxArg(`CLAUDE_CONFIG_DIR=${p.configDir}`)] : [];
  return [...env, '/bin/sh', '-c', RESUME_SCRIPT, RESUME_MARK, tmuxArg(o.claudeBin), p.uuid];
}

// One user's sessions are restored with as few tmux clients as the command language
// allows. Each tmux command is one step; consecutive steps are sent as ONE argv command list,
// with ';' as an argument of its own between them. tmux splits an argv list at any argument
// ending in an unescaped ';' and parses nothing again (no quoting, no formats, no config
// syntax: source-file would re-parse every name and path), so every value from a snapshot
// keeps the escaping the one-call-per-step path gives it: tmuxArg (a trailing ';' escaped)
// on every argument, tmuxLiteral ('#' doubled) where tmux expands formats (-s, -n, -c).
// A list cannot read back what an earlier command made, so targets are known in advance
// (restoreSteps): `=name` for a session (exact, as tmux stores it; never a prefix match),
// `=name:index` for a window (indexes from the snapshot, the first window moved there from
// the snapshot's base-index), a window alone for a pane (its active pane: panes are split in
// an order that leaves them in place without pane indexes, which depend on the user's
// pane-base-index). Never a relative target: tmux 3.3a takes a pane offset (.+N, .-N) from
// the CURRENT pane, which can be another window's, even another session's (and
// `select-pane -t W.+N` so corrupts W that the server aborts: "invalid current find
// state"). tmux reads a target `=$…` as a session id, so a session whose name starts with
// '$' waits for its record (its id) and is done by the next list.
// A list tmux accepts is at most 16 KB (MAX_IMSGSIZE); longer ones are cut at step
// boundaries (BATCH_BYTES). Every step prints one record with the ids of what it made (-P -F
// of the command that makes something, else a display-message marker after it), so after a
// failure (tmux aborts the rest of a list at its first error) exactly the steps that ran are
// known, and from then on targets are ids; the failed step is retried alone and the rest of
// ITS session goes one client per step (the per-pane path), the other sessions stay batched.
// A client that was killed (timeout, signal) leaves the state unknown: its sessions are
// given up, never retried (no conversation starts twice).

/** bytes of packed argv per tmux client: tmux refuses more than 16364; with margin */
const BATCH_BYTES = 15_000;
const REC_FIELDS = ['session_id', 'window_id', 'window_index', 'pane_id', 'pane_index'];
/** -F format of step n's record: n, then the ids of what its command made @param {number} n */
const recFmt = (n) => `tpstep${n}${FSEP}` + REC_FIELDS.map((f) => `#{${f}}`).join(FSEP) + RSEP;
/**
 * The step records in a client's stdout, in order; lines that are not records (a user's hook
 * may print) are ignored. [step, session_id, window_id, window_index, pane_id, pane_index]
 * @param {string} out @returns {string[][]}
 */
function stepRecords(out) {
  /** @type {string[][]} */
  const recs = [];
  for (const line of out.split('\n')) {
    if (!line.startsWith('tpstep') || !line.endsWith(RSEP)) continue;
    const f = line.slice(6, -RSEP.length).split(FSEP);
    if (f.length === REC_FIELDS.length + 1 && /^[0-9]+$/.test(f[0])) recs.push(f);
  }
  return recs;
}

/**
 * @typedef {{plan: PanePlan, made: boolean|null}} PaneState
 * @typedef {{plan: WindowPlan, panes: PaneState[], wid: string, at: number, moved: boolean,
 *   assumed: boolean, dead: boolean, splitFailed: boolean, layoutFailed: boolean, freeIndex: boolean}} WinState
 *   at: its index once known (-1: not yet)
 * @typedef {{sp: SessionPlan, name: string, sid: string, windows: WinState[],
 *   perStep: boolean, dead: boolean, failed: boolean}} SessState
 * @typedef {{S: SessState, what: string, argv: (n: number) => string[], ready?: () => boolean,
 *   skip?: () => boolean, done?: (f: string[]) => void, fail: (err: string) => boolean|void}} Step
 *   argv: the step's command(s), printing record n; ready: false while its targets need a
 *   record not back yet (the list is cut there); fail: after it failed ALONE; true = retry
 */

/**
 * Run steps in as few tmux clients as possible (see above). The first client of a user with
 * no server starts the server (tmuxStartServer); there is never a bootstrap session.
 * @param {Options} o @param {User} u @param {Step[]} steps @param {{up: boolean}} server
 * @param {Client} client
 */
async function runSteps(o, u, steps, server, client) {
  let i = 0;
  while (i < steps.length) {
    /** @type {{st: Step, n: number}[]} */
    const chunk = [];
    /** @type {string[]} */
    const argv = [];
    let bytes = 0;
    let next = i;
    for (; next < steps.length; next++) {
      const st = steps[next];
      if (st.S.dead) continue;
      if (st.ready && !st.ready()) {
        if (chunk.length) break; // needs what this list will print: the next list
        log('err', 'restore step not possible (internal error); session given up', { user: u.name, session: st.S.sp.name, step: st.what });
        st.S.dead = st.S.failed = true;
        continue;
      }
      if (st.skip && st.skip()) continue; // final: what it depends on only ever turns on
      const a = st.argv(next);
      const b = a.reduce((sum, x) => sum + Buffer.byteLength(x) + 1, 2);
      if (chunk.length && (o.perPane || st.S.perStep || chunk[0].st.S.perStep || bytes + b > BATCH_BYTES)) break;
      if (chunk.length) argv.push(';');
      argv.push(...a);
      bytes += b;
      chunk.push({ st, n: next });
    }
    if (!chunk.length) return;
    const r = server.up ? await client.as(u, argv) : await client.start(o, u, argv);
    const recs = stepRecords(r.stdout);
    let k = 0;
    while (k < recs.length && k < chunk.length && recs[k][0] === String(chunk[k].n)) {
      server.up = true; // tmux ran a command of ours: the server is up
      const { st } = chunk[k];
      if (st.done) st.done(recs[k]);
      k++;
    }
    if (k === chunk.length) {
      if (!r.ok) log('debug', 'tmux reported an error after the last step (a hook?)', { user: u.name, error: r.stderr });
      i = next;
      continue;
    }
    const { st: failed, n: at } = chunk[k];
    if (k < recs.length || r.interrupted) {
      // a client killed mid-list, or records out of order: what ran after the last record
      // is unknown, so nothing of those sessions is retried
      for (const { st } of chunk.slice(k)) {
        if (st.S.dead) continue;
        st.S.dead = true;
        st.S.failed = true;
        log('err', 'tmux call interrupted; session left as it is', { user: u.name, session: st.S.sp.name, step: st.what, error: r.stderr || 'unexpected output' });
      }
      i = next;
      continue;
    }
    if (chunk.length > 1) {
      log('warning', 'batched tmux call failed; retrying the step alone, then this session one call per step', {
        user: u.name, session: failed.S.sp.name, step: failed.what, error: r.stderr,
      });
      failed.S.perStep = true;
      i = at;
      continue;
    }
    i = failed.fail(r.stderr || 'tmux failed') ? at : at + 1;
  }
}

/**
 * The steps that recreate one user's planned sessions, in order: every new-session (each
 * prints its session id, first window id and index), then per session its windows, panes,
 * layouts and focus, then the group members.
 * Until a step's record has come back, a session is targeted as `=name` (exact, its stored
 * name; tmux reads a target starting with '$' as an id, so such a session waits for its
 * record: one more call), its first window as `=name:^` and moved to its saved index when the
 * snapshot's base-index says it is elsewhere, windows as `=name:index`, panes by their
 * window alone (its active pane): each split of a window's panes 1..a (a: the saved active
 * one) makes the new pane active and comes after it, the panes after a are split off a with
 * -d, last first; so the panes stay in order and a ends active without any pane index
 * (pane-base-index is the user's) and without select-pane. Once records are back (a later
 * list, or one step per call after a failure) targets are the ids.
 * @param {Options} o @param {User} u @param {UserPlan} plan @param {LiveSessions} live
 * @returns {{sessions: SessState[], steps: Step[]}}
 */
function restoreSteps(o, u, plan, live) {
  /** @type {SessState[]} */
  const sessions = [];
  /** @type {Step[]} */
  const creates = [];
  /** @type {Step[]} */
  const rest = [];
  /** @type {Step[]} */
  const joins = [];
  /** @type {Map<string, SessState>} */
  const byName = new Map();
  const rec = recFmt;
  const ctxOf = (/** @type {SessState} */ S) => ({ user: u.name, session: S.sp.name });
  /** can S be targeted now: by id, or by an exact name @param {SessState} S */
  const known = (S) => !!S.sid || !S.sp.name.startsWith('$');
  /** (a prefix: callers append ':…', or tmuxArg it when it is the whole argument) @param {SessState} S */
  const sessTarget = (S) => S.sid || `=${S.sp.name}`;
  /** a marker after a command that prints nothing @param {SessState} S @param {number} n @param {string[]} cmd */
  const marked = (S, n, cmd) => [...cmd, ';', 'display-message', '-p', '-t', S.sid || `=${S.sp.name}:`, rec(n)];
  /** @param {SessState} S @param {WinState} W */
  const winTarget = (S, W) => W.wid || `${sessTarget(S)}:${W.plan.index}`;
  const nameArgs = (/** @type {WinState} */ W) => (W.plan.autoName ? [] : ['-n', tmuxLiteral(W.plan.name)]);

  for (const sp of plan.sessions) {
    if (sp.action !== 'create') continue;
    /** @type {SessState} */
    const S = { sp, name: tmuxLiteral(unvis(sp.name)), sid: '', windows: [], perStep: false, dead: false, failed: false };
    sessions.push(S);
    const ctx = ctxOf(S);
    if (sp.joinGroup) {
      const group = sp.joinGroup;
      const head = byName.get(group);
      joins.push({
        S,
        what: 'new-session (grouped)',
        ready: () => !head || known(head),
        argv: (n) => ['new-session', '-d', '-s', S.name, '-t', head ? tmuxArg(sessTarget(head)) : live.ids.get(group) || '', '-P', '-F', rec(n)],
        skip: () => {
          if (head ? !head.dead && !head.failed : live.ids.has(group)) return false;
          log('err', 'cannot create grouped session', { ...ctx, group, error: 'the group\'s session was not restored' });
          S.failed = true;
          return true;
        },
        done: (f) => {
          S.sid = f[1];
          log('info', 'session restored (grouped)', { ...ctx, group });
        },
        fail: (err) => {
          log('err', 'cannot create grouped session', { ...ctx, group, error: err });
          S.failed = true;
        },
      });
      continue;
    }
    byName.set(sp.name, S);
    for (const w of sp.windows) {
      const panes = w.panes.filter((p) => p.action !== 'skip');
      if (panes.length) S.windows.push({ plan: w, panes: panes.map((p) => ({ plan: p, made: null })), wid: '', at: -1, moved: false, assumed: false, dead: false, splitFailed: false, layoutFailed: false, freeIndex: false });
    }
    let x = 0;
    let y = 0;
    for (const W of S.windows) {
      const sz = layoutSize(W.plan.layout);
      if (sz) {
        x = Math.max(x, sz.x);
        y = Math.max(y, sz.y);
      }
    }
    x = Math.min(Math.max(x || 200, 80), 1000);
    y = Math.min(Math.max(y || 50, 24), 400);
    const W0 = S.windows[0];
    const I0 = W0.plan.index;
    const base = Number.isInteger(sp.baseIndex) ? /** @type {number} */ (sp.baseIndex) : null;
    creates.push({
      S,
      what: 'new-session',
      argv: (n) => ['new-session', '-d', '-s', S.name, '-x', String(x), '-y', String(y), '-c', tmuxLiteral(W0.panes[0].plan.cwd), ...nameArgs(W0),
        '-P', '-F', rec(n), ...paneCommand(o, W0.panes[0].plan)],
      done: (f) => {
        S.sid = f[1];
        W0.wid = f[2];
        W0.at = Number(f[3]);
        W0.panes[0].made = true;
      },
      fail: (err) => {
        log('err', 'cannot create session', { ...ctx, error: err });
        S.dead = true;
        S.failed = true;
      },
    });
    const moveDone = () => {
      W0.moved = true;
      W0.at = I0;
    };
    // the first window to its saved index: where new-session put it is known from its record,
    // or (in the same list) assumed from the snapshot's base-index; without either, wait
    rest.push({
      S,
      what: 'move-window',
      ready: () => W0.at >= 0 || (base !== null && known(S)),
      skip: () => {
        if (W0.at >= 0) return W0.at === I0;
        W0.assumed = base === I0; // taken on trust; checked by the move at the end
        return W0.assumed;
      },
      argv: (n) => marked(S, n, ['move-window', '-s', W0.wid || `${sessTarget(S)}:^`, '-t', `${sessTarget(S)}:${I0}`]),
      done: moveDone,
      fail: (err) => {
        W0.moved = true;
        log('debug', 'window index not restored', { ...ctx, window: I0, error: err });
      },
    });
    for (const W of S.windows) {
      const wctx = { ...ctx, window: W.plan.index };
      const first = W.panes[0];
      if (W !== W0) {
        rest.push({
          S,
          what: 'new-window',
          ready: () => known(S),
          argv: (n) => ['new-window', '-d', '-t', W.freeIndex ? `${sessTarget(S)}:` : `${sessTarget(S)}:${W.plan.index}`, '-c', tmuxLiteral(first.plan.cwd), ...nameArgs(W),
            '-P', '-F', rec(n), ...paneCommand(o, first.plan)],
          done: (f) => {
            W.wid = f[2];
            W.at = Number(f[3]);
            first.made = true;
          },
          fail: (err) => {
            if (!W.freeIndex) {
              W.freeIndex = true; // the saved index is taken: the next free one
              return true;
            }
            log('err', 'cannot create window', { ...wctx, error: err });
            W.dead = true;
            for (const p of W.panes) p.made = false;
          },
        });
      }
      // Panes (see above): 1..a forward, then k-1 down to a+1 split off a with -d. While they
      // fit side by side (4+ columns each) each split gives the new pane its final share of
      // the columns, so nothing is laid out again until the end; otherwise (the old way)
      // tiled after each split keeps room for the next.
      const k = W.panes.length;
      const a = Math.max(0, W.panes.findIndex((p) => p.plan.active));
      const columns = k * 4 <= x;
      const order = [...Array.from({ length: a }, (_, i) => i + 1), ...Array.from({ length: k - 1 - a }, (_, i) => k - 1 - i)];
      for (const j of order) {
        const p = W.panes[j];
        const back = j > a;
        // forward: the new pane takes the share of panes j..k-1; back: a keeps j-a of j-a+1
        const pct = back ? Math.round(100 / (j - a + 1)) : Math.round((100 * (k - j)) / (k - j + 1));
        rest.push({
          S,
          what: 'split-window',
          ready: () => known(S),
          skip: () => W.dead,
          argv: (n) => ['split-window', ...(back ? ['-d'] : []), ...(columns ? ['-h', '-l', `${pct}%`] : []), '-t', winTarget(S, W), '-c', tmuxLiteral(p.plan.cwd),
            '-P', '-F', rec(n), ...paneCommand(o, p.plan), ...(columns ? [] : [';', 'select-layout', '-t', winTarget(S, W), 'tiled'])],
          done: () => {
            p.made = true;
          },
          fail: (err) => {
            log('err', 'cannot split pane', { ...wctx, pane: p.plan.index, error: err });
            p.made = false;
            W.splitFailed = true;
          },
        });
      }
      const savedLayout = W.plan.complete && k > 1;
      if (savedLayout) {
        rest.push({
          S,
          what: 'select-layout',
          ready: () => known(S),
          skip: () => W.dead || W.splitFailed,
          argv: (n) => marked(S, n, ['select-layout', '-t', winTarget(S, W), tmuxArg(W.plan.layout)]),
          fail: (err) => {
            log('debug', 'layout not restored', { ...wctx, error: err });
            W.layoutFailed = true;
          },
        });
      }
      if (columns && k > 1) {
        // tiled, as the old way leaves it, where the saved layout is not (or could not be) applied
        rest.push({
          S,
          what: 'select-layout tiled',
          ready: () => known(S),
          skip: () => W.dead || (savedLayout && !W.splitFailed && !W.layoutFailed),
          argv: (n) => marked(S, n, ['select-layout', '-t', winTarget(S, W), 'tiled']),
          fail: (err) => log('debug', 'layout not restored', { ...wctx, error: err }),
        });
      }
    }
    // the base-index taken on trust was not the server's: move the first window now
    rest.push({
      S,
      what: 'move-window',
      skip: () => !W0.assumed || W0.at < 0 || W0.at === I0 || W0.moved,
      argv: (n) => marked(S, n, ['move-window', '-s', W0.wid, '-t', `${S.sid}:${I0}`]),
      done: moveDone,
      fail: (err) => {
        W0.moved = true;
        log('debug', 'window index not restored', { ...ctx, window: I0, error: err });
      },
    });
    const activeW = S.windows.find((W) => W.plan.active);
    if (activeW && activeW !== W0) {
      rest.push({
        S,
        what: 'select-window',
        ready: () => known(S),
        skip: () => activeW.dead,
        argv: (n) => marked(S, n, ['select-window', '-t', winTarget(S, activeW)]),
        fail: (err) => log('debug', 'active window not restored', { ...ctx, window: activeW.plan.index, error: err }),
      });
    }
  }
  return { sessions, steps: [...creates, ...rest, ...joins] };
}

/**
 * Recreate one user's planned sessions. @returns {Promise<{created: number, failed: number}>}
 * @param {Options} o @param {User} u @param {UserPlan} plan @param {LiveSessions} live
 */
async function restoreUser(o, u, plan, live) {
  const server = { up: plan.server === 'running' };
  const client = o.perPane ? SYNC_CLIENT : ASYNC_CLIENT;
  const { sessions, steps } = restoreSteps(o, u, plan, live);
  await runSteps(o, u, steps, server, client);
  let created = 0;
  let failed = 0;
  for (const S of sessions) {
    if (!S.sid || S.failed) {
      failed++;
      continue;
    }
    created++;
    if (S.sp.joinGroup) continue; // logged when made
    const made = S.windows.filter((W) => W.wid);
    const panes = made.reduce((n, W) => n + W.panes.filter((p) => p.made).length, 0);
    const claude = made.reduce((n, W) => n + W.panes.filter((p) => p.made && p.plan.action === 'claude').length, 0);
    log('info', 'session restored', { user: u.name, session: S.sp.name, windows: made.length, panes, claude, batched: !o.perPane && !S.perStep });
  }
  return { created, failed };
}

/** @param {Options} o @param {UserPlan} plan */
function logPlan(o, plan) {
  for (const s of plan.sessions) {
    if (s.action === 'skip') {
      log(s.reason === 'session exists' ? 'info' : 'warning', 'session skipped', { user: plan.user, session: s.name, reason: s.reason });
    }
    for (const w of s.windows)
      for (const p of w.panes)
        if (p.reason)
          log(p.action === 'skip' ? 'warning' : 'notice', p.action === 'skip' ? 'pane skipped' : 'pane restored as a shell', {
            user: plan.user, session: s.name, window: w.index, pane: p.index, reason: p.reason, uuid: p.uuid, cwd: p.cwd,
          });
  }
}

/** @param {Options} o @returns {Promise<number>} */
async function cmdRestore(o) {
  if (o.dryRun) return cmdStatus(o);
  const { users, failed } = loadUsers(o);
  try {
    ensurePrivateDir(o.stateDir, true);
  } catch (e) {
    throw new FatalError(`state dir ${o.stateDir}: ${errMsg(e)}`);
  }
  const release = acquireLock(o.stateDir, 120_000);
  if (!release) throw new FatalError('another tmux-persist run holds the lock');
  try {
    let bad = failed.length;
    /** @type {Map<string, LiveSessions>} */
    const lives = new Map();
    const plans = await planAll(o, users, lives);
    // the users' servers are independent: several are restored at once (--per-pane: one by one)
    const results = await inParallel(
      plans.map((plan) => async () => {
        const u = /** @type {User} */ (users.find((x) => x.name === plan.user));
        let lost = 0;
        if (plan.error) {
          log('err', 'cannot restore user', { user: u.name, error: plan.error });
          lost++;
          if (!plan.snapshot) return lost;
        }
        if (!plan.snapshot) {
          log('info', 'no snapshot; nothing to restore', { user: u.name });
          return lost;
        }
        logPlan(o, plan);
        const live = lives.get(u.name) || { state: 'unknown', names: new Set(), ids: new Map() };
        const r = await restoreUser(o, u, plan, live);
        lost += r.failed;
        try {
          await symlinkAtomic(stateDirOf(o, u.name), 'boot', plan.snapshot);
        } catch (e) {
          log('warning', 'cannot pin the restored snapshot', { user: u.name, error: errMsg(e) });
        }
        log('info', 'restore done', {
          user: u.name, snapshot: plan.snapshot, created: r.created, skipped: plan.sessions.length - r.created - r.failed, failed: r.failed, tmuxCalls: CALLS.get(u.name) || 0,
        });
        return lost;
      }),
      o.perPane ? 1 : PARALLEL,
    );
    bad += results.reduce((a, b) => a + b, 0);
    return bad ? EXIT.PARTIAL : EXIT.OK;
  } finally {
    release();
  }
}

// ---------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------

/** @param {Options} o @returns {Promise<number>} */
async function cmdStatus(o) {
  const { users, failed } = loadUsers(o);
  const plans = await planAll(o, users);
  if (o.json) {
    process.stdout.write(JSON.stringify({ users: plans, failed }, null, 1) + '\n');
  } else {
    const q = (/** @type {string} */ s) => JSON.stringify(s);
    /** @type {string[]} */
    const out = [];
    for (const p of plans) {
      out.push(`user ${p.user}: ${p.snapshot ? `last snapshot ${p.snapshot} (${p.createdAt})` : 'no snapshot'}; tmux server ${p.server}${p.error ? `; error: ${p.error}` : ''}`);
      for (const s of p.sessions) {
        if (s.action === 'skip') {
          out.push(`  skip   session ${q(s.name)}: ${s.reason}`);
          continue;
        }
        if (s.joinGroup) {
          out.push(`  create session ${q(s.name)} grouped with ${q(s.joinGroup)}`);
          continue;
        }
        out.push(`  create session ${q(s.name)}`);
        for (const w of s.windows) {
          out.push(`    window ${w.index} ${q(w.name)}`);
          for (const pn of w.panes) {
            const what = pn.action === 'claude' ? `claude --resume ${pn.uuid}` : pn.action;
            out.push(`      pane ${pn.index} ${what} in ${q(pn.cwd)}${pn.reason ? ` (${pn.reason})` : ''}`);
          }
        }
      }
    }
    for (const f of failed) out.push(`user ${f}: error: not on this host or uid mismatch`);
    process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
  }
  return failed.length || plans.some((p) => p.error) ? EXIT.PARTIAL : EXIT.OK;
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

/** @param {string[]} argv @returns {Promise<number>} */
export async function main(argv) {
  let o;
  try {
    o = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`tmux-persist: ${errMsg(e)}\n${usage()}\n`);
    return EXIT.USAGE;
  }
  if (o.help) {
    process.stdout.write(usage() + '\n');
    return EXIT.OK;
  }
  LOGCFG.verbose = o.verbose;
  LOGCFG.cmd = o.cmd;
  process.umask(0o077);
  try {
    if (process.getuid && process.getuid() !== 0) throw new FatalError('must run as root');
    if (o.cmd === 'save') return await cmdSave(o);
    if (o.cmd === 'restore') return await cmdRestore(o);
    return await cmdStatus(o);
  } catch (e) {
    if (e instanceof FatalError) {
      log('err', e.message);
      return EXIT.FATAL;
    }
    log('err', 'unexpected error', { error: e instanceof Error ? e.stack || e.message : String(e) });
    return EXIT.FATAL;
  }
}

const isMain = (() => {
  try {
    return !!process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(new URL(import.meta.url).pathname);
  } catch {
    return false;
  }
})();
if (isMain) process.exitCode = await main(process.argv.slice(2));
