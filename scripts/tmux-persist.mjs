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
 *   sessions: [{name (as tmux stores it), group, windows: [{index, name, autoName, layout,
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
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';

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
  return spawnSync(trustedBin(name), args, { encoding: 'utf8', cwd: '/', ...opts, env: { ...ROOT_ENV } });
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
 * passing the result to new-session -s yields the same stored name again.
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
  const cstyle = { n: 10, t: 9, r: 13, b: 8, a: 7, v: 11, f: 12, s: 32, '\\': 92 };
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
 *   json: boolean, dryRun: boolean, verbose: boolean, help: boolean}} Options
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

/** @typedef {{ok: boolean, noServer: boolean, stdout: string, stderr: string}} TmuxResult */
/**
 * Run one tmux client as the user (uid/gid switched by the spawn, clean environment).
 * @param {User} u @param {string[]} args @returns {TmuxResult}
 */
function tmuxAs(u, args) {
  // The client runs as the user, but it is still root that picks the program: /usr/bin/tmux,
  // never a `tmux` found through the user's PATH.
  const r = spawnSync(trustedBin('tmux'), ['-u', ...args], {
    uid: u.uid,
    gid: u.gid,
    env: userEnv(u),
    cwd: '/',
    encoding: 'utf8',
    timeout: 20_000,
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = (r.stderr || '') + (r.error ? errMsg(r.error) : '');
  const noServer = /no server running on|error connecting to|server exited unexpectedly/.test(stderr);
  return { ok: r.status === 0 && !r.error, noServer, stdout: r.stdout || '', stderr: stderr.trim() };
}

/** @param {Options} o */
function useScope(o) {
  if (o.spawn === 'scope') return true;
  if (o.spawn === 'direct') return false;
  return fs.existsSync('/run/systemd/system');
}

/**
 * Start the user's tmux server with its first session: runuser (initgroups, pam_limits),
 * inside a transient systemd scope when systemd runs, so that the server is not part of the
 * calling unit's cgroup.
 * @param {Options} o @param {User} u @param {string[]} args @returns {TmuxResult}
 */
function tmuxStartServer(o, u, args) {
  // Root runs systemd-run and runuser only: absolute paths, root's own environment. The
  // user's environment is handed over by /usr/bin/env, which runuser already runs AS the
  // user, so no program the user controls ever runs as root.
  const userEnvArgs = Object.entries(userEnv(u)).map(([k, v]) => `${k}=${v}`);
  const inner = [trustedBin('runuser'), '-u', u.name, '--', trustedBin('env'), '-i', ...userEnvArgs, trustedBin('tmux'), '-u', ...args];
  let cmd = inner;
  if (useScope(o)) {
    const unit = `tmux-persist-${u.name.replace(/[^A-Za-z0-9_-]/g, '_')}-${Date.now().toString(36)}.scope`;
    cmd = [
      trustedBin('systemd-run'), '--scope', '--quiet', '--collect',
      `--unit=${unit}`, '--slice=tmux-persist.slice',
      // at shutdown a running save is stopped before this server is (stop order is reversed)
      '--property=Before=tmux-persist-save.service',
      `--description=tmux server of ${u.name} (restored by tmux-persist)`,
      '--', ...inner,
    ];
  }
  log('debug', 'starting tmux server', { user: u.name, via: cmd[0] });
  const r = spawnSync(cmd[0], cmd.slice(1), {
    env: { ...ROOT_ENV },
    cwd: '/',
    encoding: 'utf8',
    timeout: 30_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = ((r.stderr || '') + (r.error ? errMsg(r.error) : '')).trim();
  return { ok: r.status === 0 && !r.error, noServer: false, stdout: r.stdout || '', stderr };
}

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
];
/**
 * @typedef {{sessionId: string, session: string, group: string|null, windowId: string,
 *   windowIndex: number, windowName: string, autoName: boolean, layout: string,
 *   windowActive: boolean, paneId: string, paneIndex: number, paneActive: boolean,
 *   panePid: number, paneDead: boolean, tmuxPath: string}} PaneRow
 */
/** @param {User} u @returns {{state: 'ok'|'none'|'error', rows: PaneRow[], error?: string}} */
function listPanes(u) {
  const r = tmuxAs(u, ['list-panes', '-a', '-F', fmt(PANE_FIELDS)]);
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
    }));
    return { state: rows.length ? 'ok' : 'none', rows };
  } catch (e) {
    return { state: 'error', rows: [], error: errMsg(e) };
  }
}

/** @param {User} u @returns {{state: 'ok'|'none'|'error', names: Set<string>, error?: string}} */
function listSessions(u) {
  const r = tmuxAs(u, ['list-sessions', '-F', fmt(['session_name'])]);
  if (!r.ok) return r.noServer ? { state: 'none', names: new Set() } : { state: 'error', names: new Set(), error: r.stderr };
  try {
    return { state: 'ok', names: new Set(parseRecords(r.stdout, 1).map((f) => f[0])) };
  } catch (e) {
    return { state: 'error', names: new Set(), error: errMsg(e) };
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
    const dir = path.join(procRoot, name);
    const stat = readOr(path.join(dir, 'stat'));
    if (!stat) continue;
    const s = stat.toString();
    const close = s.lastIndexOf(')');
    if (close < 0) continue;
    const f = s.slice(close + 2).split(' ');
    const cmd = readOr(path.join(dir, 'cmdline'));
    if (!cmd || !cmd.length) continue; // kernel thread or zombie
    const argv = cmd.toString('utf8').split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    procs.set(Number(name), {
      pid: Number(name),
      ppid: Number(f[1]),
      startMs: bootMs + (Number(f[19]) * 1000) / CLK_TCK,
      argv,
      exe: readlinkOr(path.join(dir, 'exe')),
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
 * @typedef {{name: string, group: string|null, windows: WindowRec[]}} SessionRec
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
/** @param {string} dir */
function fsyncDir(dir) {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
const tmpName = (/** @type {string} */ name) => `.${name}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
/** temp + fsync + rename + dir fsync @param {string} dir @param {string} name @param {string} data */
export function writeFileAtomic(dir, name, data) {
  const tmp = path.join(dir, tmpName(name));
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, path.join(dir, name));
  fsyncDir(dir);
}
/** @param {string} dir @param {string} name @param {string} target */
function symlinkAtomic(dir, name, target) {
  const tmp = path.join(dir, tmpName(name));
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, path.join(dir, name));
  fsyncDir(dir);
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
 * What makes two snapshots "the same state": only what a restore uses (names, indexes, cwds,
 * layouts, conversations); pids, times, focus, automatic window names and how a uuid was
 * found are ignored, so an unchanged state (also right after a restore) is not saved again.
 * @param {Snapshot} s
 */
function canonical(s) {
  return JSON.stringify(
    s.sessions.map((se) => [
      se.name,
      se.group,
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
function prune(dir, keep) {
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
  if (removed) fsyncDir(dir);
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

/** @param {Options} o @returns {number} */
function cmdSave(o) {
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
    // 1. ask every tmux server first, 2. one /proc pass, 3. resolve
    /** @type {Map<string, PaneRow[]>} */
    const panes = new Map();
    for (const u of users) {
      const r = listPanes(u);
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
    /** @type {{u: User, file: string, stats: Record<string, number>}[]} */
    const pending = [];
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
        const file = prepareSnapshot(o, u, snap);
        const stats = countSnap(snap);
        if (!file) {
          log('info', 'snapshot unchanged, not rewritten', { user: u.name, ...stats });
          continue;
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
    }
    // the state may have been taken while things were being torn down: check once more
    // before any `last` moves, and drop the new files if a shutdown began meanwhile
    const why = pending.length ? saveBlocked() : null;
    for (const p of pending) {
      const dir = stateDirOf(o, p.u.name);
      try {
        if (why) {
          fs.rmSync(path.join(dir, p.file), { force: true });
          continue;
        }
        symlinkAtomic(dir, 'last', p.file);
        prune(dir, o.keep);
        log('info', 'snapshot saved', { user: p.u.name, file: p.file, ...p.stats });
      } catch (e) {
        log('err', 'save failed; previous snapshot kept', { user: p.u.name, error: errMsg(e) });
        bad++;
      }
    }
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
 * @param {Options} o @param {User} u @param {Snapshot} snap @returns {string|null} file name
 */
function prepareSnapshot(o, u, snap) {
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
  writeFileAtomic(dir, file, JSON.stringify(snap, null, 1) + '\n');
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
 *   joinGroup?: string, windows: WindowPlan[]}} SessionPlan
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

/** @param {Options} o @param {User[]} users @returns {UserPlan[]} */
function planAll(o, users) {
  const procs = scanProc(o.proc);
  const byUid = new Map(users.map((u) => [u.uid, u]));
  const claudes = findClaudes(o.proc, procs, byUid);
  /** @type {UserPlan[]} */
  const plans = [];
  for (const u of users) {
    const tx = new Transcripts(u.uid);
    const dir = stateDirOf(o, u.name);
    /** @type {{file: string, snap: Snapshot}|null} */
    let loaded = null;
    let error;
    try {
      loaded = loadSnapshot(o, dir);
      if (loaded && (loaded.snap.user !== u.name || loaded.snap.uid !== u.uid)) throw new Error(`${loaded.file} belongs to ${loaded.snap.user}/${loaded.snap.uid}`);
    } catch (e) {
      loaded = null;
      error = errMsg(e);
    }
    /** @type {{state: string, names: Set<string>, error?: string}} */
    const live = loaded ? listSessions(u) : { state: 'unknown', names: new Set() };
    if (live.state === 'error') {
      plans.push({ user: u.name, snapshot: loaded && loaded.file, createdAt: null, server: 'error', sessions: [], error: `tmux: ${live.error}` });
      continue;
    }
    const plan = planUser(u, loaded, live, runningUuids(claudes.filter((c) => c.uid === u.uid), tx), tx);
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

/**
 * Create one planned session. The first tmux command of a user with no server starts the
 * server (see tmuxStartServer); there is never a bootstrap session.
 * @param {Options} o @param {User} u @param {SessionPlan} sp @param {{up: boolean}} server
 * @returns {boolean}
 */
function createSession(o, u, sp, server) {
  const ctx = { user: u.name, session: sp.name };
  const run = (/** @type {string[]} */ args) => {
    if (server.up) return tmuxAs(u, args);
    const r = tmuxStartServer(o, u, args);
    if (r.ok) server.up = true;
    return r;
  };
  const name = tmuxLiteral(unvis(sp.name));
  if (sp.joinGroup) {
    const r = run(['new-session', '-d', '-s', name, '-t', tmuxArg(`=${unvis(sp.joinGroup)}`)]);
    if (!r.ok) log('err', 'cannot create grouped session', { ...ctx, group: sp.joinGroup, error: r.stderr });
    else log('info', 'session restored (grouped)', { ...ctx, group: sp.joinGroup });
    return r.ok;
  }
  const windows = sp.windows.map((w) => ({ ...w, panes: w.panes.filter((p) => p.action !== 'skip') })).filter((w) => w.panes.length);
  let x = 0;
  let y = 0;
  for (const w of windows) {
    const sz = layoutSize(w.layout);
    if (sz) {
      x = Math.max(x, sz.x);
      y = Math.max(y, sz.y);
    }
  }
  x = Math.min(Math.max(x || 200, 80), 1000);
  y = Math.min(Math.max(y || 50, 24), 400);
  let sid = '';
  /** @type {{wid: string, w: typeof windows[number], paneIds: string[]}[]} */
  const made = [];
  for (const w of windows) {
    const first = w.panes[0];
    const nameArgs = w.autoName ? [] : ['-n', tmuxLiteral(w.name)];
    let r;
    if (!sid) {
      r = run(['new-session', '-d', '-s', name, '-x', String(x), '-y', String(y), '-c', tmuxLiteral(first.cwd), ...nameArgs,
        '-P', '-F', fmt(['session_id', 'window_id', 'pane_id', 'window_index']), ...paneCommand(o, first)]);
      if (!r.ok) {
        log('err', 'cannot create session', { ...ctx, error: r.stderr });
        return false;
      }
    } else {
      const args = (/** @type {string} */ target) => ['new-window', '-d', '-t', target, '-c', tmuxLiteral(first.cwd), ...nameArgs,
        '-P', '-F', fmt(['session_id', 'window_id', 'pane_id', 'window_index']), ...paneCommand(o, first)];
      r = tmuxAs(u, args(`${sid}:${w.index}`));
      if (!r.ok) r = tmuxAs(u, args(`${sid}:`));
      if (!r.ok) {
        log('err', 'cannot create window', { ...ctx, window: w.index, error: r.stderr });
        continue;
      }
    }
    let f;
    try {
      f = parseRecords(r.stdout, 4)[0];
    } catch (e) {
      log('err', 'unexpected tmux output', { ...ctx, error: errMsg(e) });
      return false;
    }
    if (!f) return false;
    sid = f[0];
    const wid = f[1];
    if (Number(f[3]) !== w.index) {
      const mv = tmuxAs(u, ['move-window', '-s', wid, '-t', `${sid}:${w.index}`]);
      if (!mv.ok) log('debug', 'window index not restored', { ...ctx, window: w.index, error: mv.stderr });
    }
    const paneIds = [f[2]];
    for (const p of w.panes.slice(1)) {
      const sr = tmuxAs(u, ['split-window', '-d', '-t', paneIds[paneIds.length - 1], '-c', tmuxLiteral(p.cwd), '-P', '-F', fmt(['pane_id']),
        ...paneCommand(o, p), ';', 'select-layout', '-t', wid, 'tiled']);
      let id = null;
      try {
        id = sr.ok ? parseRecords(sr.stdout, 1)[0]?.[0] : null;
      } catch {
        id = null;
      }
      if (!id) {
        log('err', 'cannot split pane', { ...ctx, window: w.index, pane: p.index, error: sr.stderr });
        continue;
      }
      paneIds.push(id);
    }
    if (w.complete && paneIds.length === w.panes.length && w.panes.length > 1) {
      const lr = tmuxAs(u, ['select-layout', '-t', wid, w.layout]);
      if (!lr.ok) log('debug', 'layout not restored', { ...ctx, window: w.index, error: lr.stderr });
    }
    const activeIdx = w.panes.findIndex((p) => p.active);
    if (activeIdx > 0 && paneIds[activeIdx]) tmuxAs(u, ['select-pane', '-t', paneIds[activeIdx]]);
    made.push({ wid, w, paneIds });
  }
  const active = made.find((m) => m.w.active);
  if (active) tmuxAs(u, ['select-window', '-t', active.wid]);
  const panes = made.reduce((n, m) => n + m.paneIds.length, 0);
  const claude = made.reduce((n, m) => n + m.w.panes.filter((p, i) => p.action === 'claude' && m.paneIds[i]).length, 0);
  log('info', 'session restored', { ...ctx, windows: made.length, panes, claude });
  return true;
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

/** @param {Options} o @returns {number} */
function cmdRestore(o) {
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
    const plans = planAll(o, users);
    for (const plan of plans) {
      const u = /** @type {User} */ (users.find((x) => x.name === plan.user));
      if (plan.error) {
        log('err', 'cannot restore user', { user: u.name, error: plan.error });
        bad++;
        if (!plan.snapshot) continue;
      }
      if (!plan.snapshot) {
        log('info', 'no snapshot; nothing to restore', { user: u.name });
        continue;
      }
      logPlan(o, plan);
      const server = { up: plan.server === 'running' };
      let created = 0;
      for (const sp of plan.sessions) {
        if (sp.action !== 'create') continue;
        if (createSession(o, u, sp, server)) created++;
        else bad++;
      }
      try {
        symlinkAtomic(stateDirOf(o, u.name), 'boot', plan.snapshot);
      } catch (e) {
        log('warning', 'cannot pin the restored snapshot', { user: u.name, error: errMsg(e) });
      }
      log('info', 'restore done', { user: u.name, snapshot: plan.snapshot, created, skipped: plan.sessions.length - created });
    }
    return bad ? EXIT.PARTIAL : EXIT.OK;
  } finally {
    release();
  }
}

// ---------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------

/** @param {Options} o @returns {number} */
function cmdStatus(o) {
  const { users, failed } = loadUsers(o);
  const plans = planAll(o, users);
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

/** @param {string[]} argv @returns {number} */
export function main(argv) {
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
    if (o.cmd === 'save') return cmdSave(o);
    if (o.cmd === 'restore') return cmdRestore(o);
    return cmdStatus(o);
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
if (isMain) process.exitCode = main(process.argv.slice(2));
