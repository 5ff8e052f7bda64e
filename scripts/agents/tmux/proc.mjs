// @ts-check
/**
 * tmux-persist: the processes behind the panes. One pass over /proc per run; which
 * processes are Claude Code; the conversation each one runs (argv, or the transcripts in
 * its project dir). Every directory of a user's Claude tree that root lists is opened once
 * and checked to be the user's (readOwnedDir), and CLAUDE_CONFIG_DIR counts only inside the
 * user's home (confinedConfigDir).
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
// /proc: one pass
// ---------------------------------------------------------------------------------------

/**
 * @typedef {{pid: number, ppid: number, startMs: number, argv: string[], exe: string}} Proc
 * @typedef {{pid: number, uid: number, startMs: number, argv: string[], cwd: string,
 *   configDir: string, argvUuid: string|null, argvSource: string|null}} ClaudeProc
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
export function findClaudes(procRoot, procs, usersByUid) {
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
 * Decide the conversation of every top-level claude of one user.
 * @param {ClaudeProc[]} claudes (one user's) @param {Transcripts} tx
 * @returns {Map<number, UuidDecision>}
 */
export function resolveClaudes(claudes, tx) {
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
