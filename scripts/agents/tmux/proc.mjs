// @ts-check
/**
 * tmux-persist: the processes behind the panes. One pass over /proc per run; which
 * processes are Claude Code; the conversation each one runs: Claude's own session file
 * (<config dir>/sessions/<pid>.json, checked against /proc), else argv, else the transcripts
 * in its project dir. Every directory of a user's Claude tree that root lists is opened once
 * and checked to be the user's (readOwnedDir), the session files are reached from the home
 * without following any symlink (openOwnedPath), and CLAUDE_CONFIG_DIR counts only inside
 * the user's home (confinedConfigDir).
 */
import fs from 'node:fs';
import path from 'node:path';
import { CLK_TCK, FatalError, RESUME_MARK, START_SLACK_MS, UUID_RE, errMsg, log, readOr, readlinkOr } from './core.mjs';
import { slugify } from './names.mjs';

/** @typedef {import('./core.mjs').User} User */

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
/** the native installer: ~/.local/share/claude/versions/<version> (the binary itself) */
const VERSIONS_RE = /\/claude\/versions\/[^/]+$/;
/**
 * `claude` (a PATH link, the native package's own binary
 * @anthropic-ai/claude-code-<platform>/claude) or `claude.exe` (what npm's
 * @anthropic-ai/claude-code/bin/claude.exe becomes after its postinstall, and what
 * /proc/PID/exe names for an npm install)
 */
const CLAUDE_NAMES = new Set(['claude', 'claude.exe']);
/**
 * Is this process Claude Code by its executable and argv (never by its title/comm)? The
 * fallback after Claude's own session file (see findClaudes).
 * @param {string[]} argv @param {string} exe
 */
export function isClaudeProcess(argv, exe) {
  if (!argv.length) return false;
  const a0 = argv[0];
  if (CLAUDE_NAMES.has(base(a0)) || VERSIONS_RE.test(a0)) return true;
  const e = exe.replace(/ \(deleted\)$/, '');
  if (CLAUDE_NAMES.has(base(e)) || VERSIONS_RE.test(e)) return true;
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
// /proc: one pass
// ---------------------------------------------------------------------------------------

/**
 * @typedef {{pid: number, ppid: number, startMs: number, startTicks: string, argv: string[], exe: string}} Proc
 *   startTicks: /proc/PID/stat field 22 as written there (clock ticks since boot), which is
 *   exactly how Claude writes `procStart` in its session file
 * @typedef {{sessionId: string, file: string, cwd: string|null, status: string|null}} SessionInfo
 * @typedef {{pid: number, uid: number, startMs: number, argv: string[], cwd: string,
 *   configDir: string, argvUuid: string|null, argvSource: string|null,
 *   session: SessionInfo|null, sessionNote?: string, identifiedBy: 'session-file'|'exe-argv'}} ClaudeProc
 */
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
export function scanProc(procRoot) {
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
      startTicks: f[19],
      argv,
      exe: readlinkOr(`${dir}/exe`),
    });
  }
  return procs;
}

/** the four ids of a /proc/PID/status `Uid:` line (real, effective, saved, fs) @param {string|null} status */
function statusUids(status) {
  const m = status ? /^Uid:\s+([0-9]+)\s+([0-9]+)\s+([0-9]+)\s+([0-9]+)\s*$/m.exec(status) : null;
  return m ? m.slice(1, 5).map(Number) : null;
}
/**
 * The cwd of process `pid`, only while it is wholly `uid`'s own: /proc/<pid> is opened once,
 * and through that one handle its owner (fstat) and every id of its `Uid:` line must be `uid`
 * both before and after the cwd link is read. A pid that a tmux server merely names (another
 * user's or root's process, a setuid program in the pane) gives nothing (foreign: true), and
 * neither does a pid reused meanwhile (the handle stays on the old, dead process) or a process
 * that changes its ids in between. cwd null: not the user's, gone, or no cwd.
 * @param {string} procRoot @param {number} pid @param {number} uid @returns {{cwd: string|null, foreign: boolean}}
 */
export function ownCwd(procRoot, pid, uid) {
  const none = { cwd: null, foreign: false };
  if (!Number.isInteger(pid) || pid <= 0 || uid === 0) return none;
  let fd;
  try {
    fd = fs.openSync(`${procRoot}/${pid}`, NOFOLLOW_DIR);
  } catch {
    return none;
  }
  const dir = `/proc/self/fd/${fd}`;
  /** @returns {boolean|null} null: gone */
  const owned = () => {
    const ids = statusUids(readProcFile(`${dir}/status`, 'latin1'));
    if (!ids) return null;
    return fs.fstatSync(/** @type {number} */ (fd)).uid === uid && ids.every((x) => x === uid);
  };
  try {
    const before = owned();
    if (!before) return { cwd: null, foreign: before === false };
    const cwd = fs.readlinkSync(`${dir}/cwd`);
    const after = owned();
    return after ? { cwd, foreign: false } : { cwd: null, foreign: after === false };
  } catch {
    return none;
  } finally {
    fs.closeSync(fd);
  }
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
 * All top-level claude processes (not below another claude) of the given users, with their
 * facts. A process is claude when its user's Claude config dir has a session file for its
 * pid that checks out (readSessionFile), or else by isClaudeProcess. The session dir looked
 * in is ~/.claude/sessions, plus <CLAUDE_CONFIG_DIR>/sessions for a process that names one
 * inside the home.
 * @param {string} procRoot @param {Map<number, Proc>} procs @param {Map<number, User>} usersByUid
 * @returns {ClaudeProc[]}
 */
export function findClaudes(procRoot, procs, usersByUid) {
  /** @type {Map<number, number>} pid -> uid, for every process that may be a roster user's claude */
  const uidOf = new Map();
  /** @param {number} pid @returns {number} */
  const uidOfPid = (pid) => {
    const hit = uidOf.get(pid);
    if (hit !== undefined) return hit;
    let uid = -1;
    try {
      uid = fs.statSync(path.join(procRoot, String(pid))).uid;
    } catch {
      /* gone */
    }
    uidOf.set(pid, uid);
    return uid;
  };
  /** @type {Set<number>} */
  const isClaude = new Set();
  for (const p of procs.values()) if (isClaudeProcess(p.argv, p.exe)) isClaude.add(p.pid);
  // Claude's own record: a process with a session file in its user's ~/.claude/sessions is
  // claude whatever its exe is called (checked in full below, before it counts)
  /** @type {Map<number, Set<number>>} uid -> pids named by a file in ~/.claude/sessions */
  const listed = new Map();
  for (const u of usersByUid.values()) {
    const pids = new Set(sessionPids(path.join(u.home, '.claude'), u));
    listed.set(u.uid, pids);
    for (const pid of pids) {
      if (isClaude.has(pid) || !procs.has(pid)) continue; // no such process: left by a claude that died
      if (uidOfPid(pid) !== u.uid) {
        log('notice', "claude session file names another user's process; ignored", { user: u.name, pid });
        continue;
      }
      const sf = readSessionFile(path.join(u.home, '.claude'), u, /** @type {Proc} */ (procs.get(pid)));
      if (sf.ok) isClaude.add(pid);
      else log('notice', 'claude session file does not match the process (stale or forged); ignored', { user: u.name, pid, file: sf.file, why: sf.why });
    }
  }
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
      // the restore wrapper: sh -c SCRIPT tmux-persist-resume <claude-bin> <resume args, with --resume <uuid>>
      if (!wrapUuid && q.argv.length >= 6 && q.argv[3] === RESUME_MARK) wrapUuid = argvUuid(q.argv.slice(4));
    }
    if (nested) continue;
    const uid = uidOfPid(pid);
    const u = usersByUid.get(uid);
    if (!u) continue;
    const { cwd } = ownCwd(procRoot, pid, uid);
    if (!cwd) continue;
    const own = argvUuid(p.argv);
    const configDir = confinedConfigDir(claudeConfigDirOf(procRoot, pid), u);
    /** @type {ClaudeProc} */
    const c = {
      pid,
      uid,
      startMs: p.startMs,
      argv: p.argv,
      cwd,
      configDir,
      argvUuid: own || wrapUuid,
      argvSource: own ? 'argv' : wrapUuid ? 'restore-wrapper' : null,
      session: null,
      identifiedBy: 'exe-argv',
    };
    const inDefault = configDir === path.join(u.home, '.claude') && listed.get(uid)?.has(pid);
    if (inDefault || configDir !== path.join(u.home, '.claude')) {
      const sf = readSessionFile(configDir, u, p);
      if (sf.ok) {
        c.session = sf.session;
        if (!isClaudeProcess(p.argv, p.exe)) c.identifiedBy = 'session-file';
      } else if (sf.why !== 'missing') {
        c.sessionNote = `session file ignored: ${sf.why}`;
        log('warning', 'claude session file ignored; falling back to argv and transcripts', { user: u.name, pid, file: sf.file, why: sf.why });
      }
    }
    out.push(c);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Claude's session files: <config dir>/sessions/<pid>.json
// ---------------------------------------------------------------------------------------

const NOFOLLOW_DIR = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
const SESSION_MAX = 64 << 10;

/**
 * Opens `rel` (relative, '/'-separated) below the user's home one component at a time
 * through /proc/self/fd, never following a symlink (O_NOFOLLOW on every component), each
 * directory and the result checked to be owned by the user. The home itself is opened by its
 * path (the roster's, root's to resolve) and must be a directory owned by the user.
 * @param {{home: string, uid: number}} u @param {string} rel @param {'dir'|'file'} kind
 * @returns {{fd: number} | {why: string}}
 */
function openOwnedPath(u, rel, kind) {
  let fd;
  try {
    fd = fs.openSync(u.home, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NONBLOCK);
  } catch {
    return { why: 'home not readable' };
  }
  const parts = rel.split('/').filter((x) => x && x !== '.');
  try {
    const st = fs.fstatSync(fd);
    if (!st.isDirectory() || st.uid !== u.uid) return { why: `home not owned by the user (owner ${st.uid})` };
    for (let i = 0; i < parts.length; i++) {
      if (parts[i] === '..') return { why: 'path leaves the home' };
      const last = i === parts.length - 1;
      const flags = last && kind === 'file' ? fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK : NOFOLLOW_DIR;
      let next;
      try {
        next = fs.openSync(`/proc/self/fd/${fd}/${parts[i]}`, flags);
      } catch (e) {
        const code = /** @type {NodeJS.ErrnoException} */ (e).code;
        if (code === 'ENOENT') return { why: 'missing' };
        if (code === 'ELOOP' || code === 'ENOTDIR') return { why: `${parts.slice(0, i + 1).join('/')} is a symlink or not a directory (not followed)` };
        return { why: `${parts.slice(0, i + 1).join('/')}: ${errMsg(e)}` };
      }
      fs.closeSync(fd);
      fd = next;
      const cur = fs.fstatSync(fd);
      if (cur.uid !== u.uid) return { why: `${parts.slice(0, i + 1).join('/')} is not owned by the user (owner ${cur.uid})` };
      if (last && kind === 'file' && !cur.isFile()) return { why: `${parts.join('/')} is not a regular file` };
    }
    const r = { fd };
    fd = -1;
    return r;
  } catch (e) {
    return { why: errMsg(e) };
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

/** configDir relative to the home, or null when it is not inside it. @param {string} configDir @param {{home: string}} u */
function relToHome(configDir, u) {
  const r = path.relative(u.home, configDir);
  return r.startsWith('..') || path.isAbsolute(r) ? null : r;
}

/**
 * The pids named by `<pid>.json` files in <configDir>/sessions (the user's, reached without
 * following symlinks); empty when there is none.
 * @param {string} configDir @param {User} u @returns {number[]}
 */
export function sessionPids(configDir, u) {
  const rel = relToHome(configDir, u);
  if (rel === null) return [];
  const o = openOwnedPath(u, path.posix.join(rel, 'sessions'), 'dir');
  if (!('fd' in o)) {
    if (o.why !== 'missing') log('warning', 'claude sessions dir not read', { user: u.name, dir: path.join(configDir, 'sessions'), why: o.why });
    return [];
  }
  try {
    return fs
      .readdirSync(`/proc/self/fd/${o.fd}`)
      .filter((n) => /^[0-9]+\.json$/.test(n))
      .map((n) => Number(n.slice(0, -5)));
  } catch {
    return [];
  } finally {
    fs.closeSync(o.fd);
  }
}

/**
 * Claude's own record of process `p`: <configDir>/sessions/<pid>.json, used only when it is
 * the user's file inside the user's own config dir (no symlink anywhere below the home), and
 * it names this very process: `pid` equal, `procStart` equal to /proc/PID/stat's start time
 * (a file left by a dead claude whose pid was reused does not match), `sessionId` a uuid.
 * @param {string} configDir @param {User} u @param {Proc} p
 * @returns {{ok: true, session: SessionInfo} | {ok: false, why: string, file: string}}
 */
export function readSessionFile(configDir, u, p) {
  const file = path.join(configDir, 'sessions', `${p.pid}.json`);
  const rel = relToHome(configDir, u);
  if (rel === null) return { ok: false, why: 'config dir outside the home', file };
  const o = openOwnedPath(u, path.posix.join(rel, 'sessions', `${p.pid}.json`), 'file');
  if (!('fd' in o)) return { ok: false, why: o.why, file };
  let text;
  try {
    const st = fs.fstatSync(o.fd);
    if (st.size > SESSION_MAX) return { ok: false, why: `larger than ${SESSION_MAX} bytes`, file };
    text = fs.readFileSync(o.fd, 'utf8');
  } catch (e) {
    return { ok: false, why: errMsg(e), file };
  } finally {
    fs.closeSync(o.fd);
  }
  /** @type {any} */
  let j;
  try {
    j = JSON.parse(text);
  } catch {
    return { ok: false, why: 'not JSON', file };
  }
  if (!j || typeof j !== 'object') return { ok: false, why: 'not a JSON object', file };
  if (j.pid !== p.pid) return { ok: false, why: `pid ${JSON.stringify(j.pid)} is not ${p.pid}`, file };
  if (typeof j.procStart !== 'string' || j.procStart !== p.startTicks)
    return { ok: false, why: `procStart ${JSON.stringify(j.procStart)} is not the process start time ${p.startTicks} (stale or forged)`, file };
  if (typeof j.sessionId !== 'string' || !UUID_RE.test(j.sessionId)) return { ok: false, why: 'sessionId is not a uuid', file };
  return {
    ok: true,
    session: {
      sessionId: j.sessionId.toLowerCase(),
      file,
      cwd: typeof j.cwd === 'string' ? j.cwd : null,
      status: typeof j.status === 'string' ? j.status : null,
    },
  };
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
export class Transcripts {
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
 * Decide the conversation of every top-level claude of one user: the session file's
 * sessionId when there is one (exact, whatever else runs in the same dir), else decideUuid
 * among the claudes that have none (a session-file conversation is never a candidate of
 * another process, and a claude with a session file does not make a dir "shared").
 * @param {ClaudeProc[]} claudes (one user's) @param {Transcripts} tx
 * @returns {Map<number, UuidDecision>}
 */
export function resolveClaudes(claudes, tx) {
  /** @type {Map<number, UuidDecision>} */
  const out = new Map();
  /** @type {Set<string>} conversations that a session file accounts for */
  const exact = new Set();
  for (const c of claudes) {
    if (!c.session) continue;
    const id = c.session.sessionId;
    exact.add(id);
    const t = tx.find(c.configDir, c.cwd, id);
    out.set(
      c.pid,
      t
        ? { uuid: id, status: 'ok', source: 'session-file', transcript: t.path }
        : { uuid: null, status: 'no-transcript', source: 'session-file', transcript: null, note: `session ${id} has no transcript yet (never messaged)` },
    );
  }
  const rest = claudes.filter((c) => !c.session);
  /** @type {Map<string, number>} */
  const perDir = new Map();
  const dirOf = (/** @type {ClaudeProc} */ c) => tx.projectDir(c.configDir, c.cwd);
  for (const c of rest) perDir.set(dirOf(c), (perDir.get(dirOf(c)) || 0) + 1);
  for (const c of rest) {
    const dir = dirOf(c);
    const d = decideUuid({
      startMs: c.startMs,
      argvUuid: c.argvUuid,
      argvSource: c.argvSource,
      shared: (perDir.get(dir) || 0) > 1,
      transcripts: tx.list(dir).filter((t) => !exact.has(t.uuid)),
      argvTranscript: c.argvUuid ? tx.find(c.configDir, c.cwd, c.argvUuid) : null,
    });
    if (c.sessionNote) d.note = d.note ? `${c.sessionNote}; ${d.note}` : c.sessionNote;
    out.set(c.pid, d);
  }
  return out;
}
