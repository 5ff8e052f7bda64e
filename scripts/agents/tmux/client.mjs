// @ts-check
/**
 * tmux-persist: the programs root runs, and tmux run as a user.
 *
 * Root runs only programs resolved from its own fixed PATH to root-owned files no one else may
 * write (trustedBin), with its own fixed environment (ROOT_ENV) and cwd /. A user's tmux
 * client runs with the user's uid/gid and a clean environment (userEnv); the command that
 * STARTS a user's server goes through runuser (and a systemd scope), see serverStartCommand.
 * This is the only module that starts processes.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { FatalError, LOGCFG, errMsg, log } from './core.mjs';
import { LIMITS } from './limits.mjs';

/** @typedef {import('./core.mjs').Options} Options @typedef {import('./core.mjs').User} User */

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
export function rootRun(name, args, opts = {}) {
  return /** @type {import('node:child_process').SpawnSyncReturns<string>} */ (spawnSync(trustedBin(name), args, { encoding: 'utf8', cwd: '/', ...opts, env: { ...ROOT_ENV } }));
}

/** @param {User} u */
export function userEnv(u) {
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
  // The user's manager, when it runs: a tmux built with systemd support (Debian trixie,
  // Ubuntu 24.04) then starts each new pane in its own scope of that manager, which carries
  // the user's pane cap (OOMPolicy=continue; components/scripts/limits.ts).
  const run = `/run/user/${u.uid}`;
  if (fs.existsSync(`${run}/bus`)) Object.assign(env, { XDG_RUNTIME_DIR: run, DBUS_SESSION_BUS_ADDRESS: `unix:path=${run}/bus` });
  return env;
}

/** systemd's version (`systemctl --version`'s first number), once; 0 when unknown. */
let systemdVersion = -1;
function systemdAtLeast(/** @type {number} */ v) {
  if (systemdVersion < 0) {
    const r = spawnSync(trustedBin('systemctl'), ['--version'], { encoding: 'utf8', env: { ...ROOT_ENV }, cwd: '/', timeout: 10_000 });
    systemdVersion = Number(/systemd (\d+)/.exec(r.stdout || '')?.[1] ?? 0);
  }
  return systemdVersion >= v;
}
/** @param {User} u */
export function socketPath(u) {
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
export const CALLS = new Map();
/** @param {User} u */
function countCall(u) {
  CALLS.set(u.name, (CALLS.get(u.name) || 0) + 1);
}
/** spawn options of a tmux client run as the user (uid/gid switched by the spawn, clean environment) @param {User} u */
function clientOpts(u) {
  return { uid: u.uid, gid: u.gid, env: userEnv(u), cwd: '/', stdio: /** @type {['ignore', 'pipe', 'pipe']} */ (['ignore', 'pipe', 'pipe']) };
}
const CLIENT_TIMEOUT = 20_000;
const START_TIMEOUT = 30_000;
const MAX_OUTPUT = 64 << 20;
/**
 * Output and exit of a child started with spawn (the asynchronous twin of spawnSync's result);
 * more than `max` bytes of stdout kill it (error "output too large").
 * @param {import('node:child_process').ChildProcess} child @param {number} [max] @returns {Promise<Spawned>}
 */
function collect(child, max = MAX_OUTPUT) {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    /** @type {Error|null} */
    let error = null;
    if (child.stdout) {
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (/** @type {string} */ d) => {
        if (stdout.length + d.length > max) {
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
 * blocking (the clients of several users run at once). At most `max` bytes of its answer are read.
 * @param {User} u @param {string[]} args @param {number} [max] @returns {Promise<TmuxResult>}
 */
async function tmuxAsync(u, args, max = MAX_OUTPUT) {
  countCall(u);
  const t0 = performance.now();
  const r = await collect(spawn(trustedBin('tmux'), ['-u', ...args], { ...clientOpts(u), timeout: CLIENT_TIMEOUT }), max);
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
 * server is not part of the calling unit's cgroup. The scope is in the user's own slice
 * (`user-<uid>.slice`), so the user's limits (memory, CPU, tasks: the program's drop-in)
 * hold for the restored sessions as for every login; started there, not moved, so no pane
 * ever runs outside it.
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
    `--unit=${unit}`, `--slice=user-${u.uid}.slice`,
    // at shutdown a running save is stopped before this server is (stop order is reversed)
    '--property=Before=tmux-persist-save.service',
    // an OOM kill inside (the user's slice at its cap) takes that process, not the server
    // with every pane (scopes take OOMPolicy from systemd 253)
    ...(systemdAtLeast(253) ? ['--property=OOMPolicy=continue'] : []),
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
export const SYNC_CLIENT = { as: async (u, args) => tmuxAs(u, args), start: async (o, u, args) => tmuxStartServer(o, u, args) };
/** @type {Client} */
export const ASYNC_CLIENT = { as: tmuxAsync, start: tmuxStartServerAsync };

const NONCE = crypto.randomBytes(6).toString('hex');
export const FSEP = `|tp${NONCE}|`;
export const RSEP = `~tp${NONCE}~`;
/** @param {string[]} fields */
export function fmt(fields) {
  return fields.map((f) => `#{${f}}`).join(FSEP) + RSEP;
}
/** @param {string} out @param {number} n @returns {string[][]} */
export function parseRecords(out, n) {
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
/** a number field of list-panes: digits only (a server that sends anything else is refused) @param {string} f @param {string} what */
function count(f, what) {
  if (!/^[0-9]{1,9}$/.test(f)) throw new Error(`tmux answered ${what} ${JSON.stringify(f.slice(0, 40))}, not a number`);
  return Number(f);
}
/**
 * Every pane of the user's server. The server is the user's: its answer is read up to
 * LIMITS.listBytes, numbers must be numbers, and what may be saved of it is decided later
 * (limits.mjs screenRows; pane pids in proc.mjs ownCwd; paths by userDirs).
 * @param {User} u @returns {Promise<{state: 'ok'|'none'|'error', rows: PaneRow[], error?: string}>}
 */
export async function listPanes(u) {
  if (noSocket(u)) return { state: 'none', rows: [] };
  const r = await tmuxAsync(u, ['list-panes', '-a', '-F', fmt(PANE_FIELDS)], LIMITS.listBytes);
  if (!r.ok) return r.noServer ? { state: 'none', rows: [] } : { state: 'error', rows: [], error: r.stderr };
  try {
    const rows = parseRecords(r.stdout, PANE_FIELDS.length).map((f) => ({
      sessionId: f[0],
      session: f[1],
      group: f[2] === '1' && f[3] ? f[3] : null,
      windowId: f[4],
      windowIndex: count(f[5], 'window_index'),
      windowName: f[6],
      autoName: f[7] === '1' || f[7] === 'on',
      layout: f[8],
      windowActive: f[9] === '1',
      paneId: f[10],
      paneIndex: count(f[11], 'pane_index'),
      paneActive: f[12] === '1',
      panePid: count(f[13], 'pane_pid'),
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
export async function listSessions(u) {
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

/** argv bytes of paths per find (well below ARG_MAX, and MAX_ARG_STRLEN per path) */
const FIND_CHUNK = 128 << 10;
/**
 * Which of `paths` the user may enter, decided by the kernel with the user's own credentials:
 * root never stats them. find runs as the user (setpriv: the user's uid, gid and supplementary
 * groups, no new privileges) and answers, per path it can reach, whether it is a directory the
 * user may search ('ok') or not ('no'); a path the user cannot reach at all is 'missing' (for
 * the user it does not exist). Paths must be absolute (limits.mjs usablePath), so find never
 * reads one as an option or an expression. Only answers about the paths asked are taken, and
 * '/' is asked each time: without its 'ok' the answer is not trusted (throws), as for a
 * find that failed, timed out or was killed. The user may tamper with a process of their own,
 * but it can only answer about the user's own paths, and root acts on none of them.
 * @param {User} u @param {Iterable<string>} paths @returns {Promise<Map<string, 'ok'|'no'|'missing'>>}
 */
export async function userDirs(u, paths) {
  /** @type {Map<string, 'ok'|'no'|'missing'>} */
  const out = new Map();
  /** @type {string[][]} */
  const chunks = [[]];
  let size = 0;
  for (const p of new Set(paths)) {
    if (!p.startsWith('/') || p.includes('\0')) throw new Error(`not an absolute path: ${JSON.stringify(p)}`);
    out.set(p, 'missing');
    const n = Buffer.byteLength(p) + 1;
    if (size + n > FIND_CHUNK && chunks[chunks.length - 1].length) {
      chunks.push([]);
      size = 0;
    }
    chunks[chunks.length - 1].push(p);
    size += n;
  }
  for (const chunk of chunks) {
    if (!chunk.length) continue;
    const args = ['--reuid', String(u.uid), '--regid', String(u.gid), '--init-groups', '--no-new-privs', '--',
      trustedBin('find'), '-H', '/', ...chunk, '-maxdepth', '0',
      '(', '-type', 'd', '-executable', '-printf', 'y%p\\0', ')', '-o', '-printf', 'n%p\\0'];
    const max = chunk.reduce((n, p) => n + Buffer.byteLength(p) + 2, 4);
    const r = await collect(spawn(trustedBin('setpriv'), args, { cwd: '/', env: { ...ROOT_ENV }, stdio: ['ignore', 'pipe', 'pipe'], timeout: CLIENT_TIMEOUT }), max);
    if (r.error || r.signal || (r.status !== 0 && r.status !== 1)) throw new Error(`checking paths as ${u.name} failed: ${(r.error ? errMsg(r.error) : r.signal || `exit ${r.status}`)} ${r.stderr.trim().slice(0, 200)}`);
    let root = false;
    for (const rec of r.stdout.split('\0')) {
      const p = rec.slice(1);
      if (p === '/' && rec[0] === 'y') root = true;
      if (out.has(p) && (rec[0] === 'y' || rec[0] === 'n')) out.set(p, rec[0] === 'y' ? 'ok' : 'no');
    }
    if (!root) throw new Error(`checking paths as ${u.name} failed: no answer for /`);
  }
  return out;
}
