// @ts-check
/**
 * tmux-persist save: every user's server is asked at once (one list-panes each), /proc is
 * read once, each Claude pane's conversation is decided (proc.mjs), and the users' snapshots
 * are written at once; `last` moves only after a complete, non-empty save while the system
 * is not stopping.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EXIT, LOBBY_NAME_RE, PARALLEL, SNAPSHOT_FORMAT, errMsg, inParallel, log } from './core.mjs';
import { listPanes, rootRun, socketPath, userDirs } from './client.mjs';
import { LIMITS, screenRows, usablePath } from './limits.mjs';
import { Transcripts, findClaudes, ownCwd, resolveClaudes, scanProc } from './proc.mjs';
import { SnapshotTooLarge, acquireLock, ensureStateRoot, prepareSnapshot, prune, stateDirOf, symlinkAtomic } from './store.mjs';
import { loadUsers } from './users.mjs';

/**
 * @typedef {import('./core.mjs').Options} Options @typedef {import('./core.mjs').User} User
 * @typedef {import('./client.mjs').PaneRow} PaneRow @typedef {import('./proc.mjs').UuidDecision} UuidDecision
 * @typedef {import('./proc.mjs').ClaudeProc} ClaudeProc
 * @typedef {import('./store.mjs').ClaudeRec} ClaudeRec @typedef {import('./store.mjs').PaneRec} PaneRec
 * @typedef {import('./store.mjs').WindowRec} WindowRec @typedef {import('./store.mjs').SessionRec} SessionRec
 * @typedef {import('./store.mjs').Snapshot} Snapshot
 */

// ---------------------------------------------------------------------------------------
// systemd state
// ---------------------------------------------------------------------------------------

function systemdRunning() {
  return fs.existsSync('/run/systemd/system');
}
/** @returns {string|null} why saving now would be wrong (shutdown or restore in progress) */
export function saveBlocked() {
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

/**
 * Where each pane's pid is the user's own process: pane id -> its cwd (null when it has none).
 * A pane pid the user's server reports for anything else (another user's or root's process)
 * is left out, and counted in `foreign`.
 * @param {string} procRoot @param {User} u @param {PaneRow[]} rows
 */
function ownPanes(procRoot, u, rows) {
  /** @type {Map<string, string|null>} */
  const cwds = new Map();
  /** @type {number[]} */
  const foreign = [];
  for (const r of rows) {
    const own = ownCwd(procRoot, r.panePid, u.uid);
    if (own.foreign) foreign.push(r.panePid);
    else cwds.set(r.paneId, own.cwd);
  }
  return { cwds, foreign };
}

/**
 * A pane's cwd candidates, in order: its claude's cwd, its pane pid's cwd (the user's own
 * process only), tmux's pane_current_path; each kept only within the path rules. The first
 * the user may enter wins (settleCwds), else the home.
 * @typedef {{pane: PaneRec, cands: string[]}} PaneCwd
 */
/**
 * @param {PaneRow[]} rows @param {Map<string, ClaudeRec>} claudeByPane
 * @param {Map<string, string|null>} ownCwds @returns {{sessions: SessionRec[], cwds: PaneCwd[]}}
 */
function buildSessions(rows, claudeByPane, ownCwds) {
  /** @type {Map<string, SessionRec>} */
  const sessions = new Map();
  /** @type {Map<string, WindowRec>} */
  const windows = new Map();
  /** @type {PaneCwd[]} */
  const cwds = [];
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
    /** @type {PaneRec} */
    const pane = { index: r.paneIndex, active: r.paneActive, cwd: '', pid: r.panePid, claude };
    if (r.paneDead) pane.dead = true;
    w.panes.push(pane);
    cwds.push({ pane, cands: [claude ? claude.cwd : null, ownCwds.get(r.paneId), r.tmuxPath].filter(usablePath) });
  }
  const list = [...sessions.values()];
  for (const s of list) {
    s.windows.sort((a, b) => a.index - b.index);
    for (const w of s.windows) w.panes.sort((a, b) => a.index - b.index);
  }
  return { sessions: list, cwds };
}

/**
 * Every pane's cwd: the first candidate the user may enter, checked as the user (userDirs),
 * else the user's home; a claude whose own cwd the user may not enter is not saved (the pane
 * is saved as a shell). One log line per user for what was replaced.
 * @param {User} u @param {PaneCwd[]} cwds
 */
async function settleCwds(u, cwds) {
  const dirs = await userDirs(u, cwds.flatMap((c) => c.cands));
  let home = 0;
  let claude = 0;
  for (const { pane, cands } of cwds) {
    if (pane.claude && dirs.get(pane.claude.cwd) !== 'ok') {
      pane.claude = null;
      claude++;
    }
    const cwd = cands.find((c) => dirs.get(c) === 'ok');
    if (!cwd) home++;
    pane.cwd = cwd || u.home;
  }
  if (home || claude) log('notice', 'cwd not enterable by the user; home saved instead', { user: u.name, panes: home, claude });
}

/**
 * The claude of each pane (pane id -> record): a claude belongs to the pane whose pid is its
 * nearest ancestor among the panes whose pid is the user's own; several in one pane: ambiguous.
 * @param {ClaudeProc[]} mine @param {PaneRow[]} rows @param {Map<string, string|null>} ownCwds
 * @param {Map<number, import('./proc.mjs').Proc>} procs @param {Transcripts} tx
 */
function claudesByPane(mine, rows, ownCwds, procs, tx) {
  const decisions = resolveClaudes(mine, tx);
  /** @type {Map<number, string>} pane pid -> pane id */
  const panePids = new Map(rows.filter((r) => ownCwds.has(r.paneId)).map((r) => [r.panePid, r.paneId]));
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
      identifiedBy: c.identifiedBy,
    };
    if (d.note) rec.note = d.note;
    if (d.candidates) rec.candidates = d.candidates.slice(0, LIMITS.candidates);
    if (byPane.has(paneId)) multi.add(paneId);
    else byPane.set(paneId, rec);
  }
  for (const id of multi) {
    const rec = /** @type {ClaudeRec} */ (byPane.get(id));
    byPane.set(id, { ...rec, uuid: null, status: 'ambiguous', source: null, transcript: null, note: 'several claude processes in one pane' });
  }
  return byPane;
}

/**
 * One user's snapshot from their server's rows, or null when it is refused (a count over its
 * cap: one log line). Names and layouts over their caps are left out (one log line), pane
 * pids that are not the user's own give no cwd (one log line), every cwd is checked as the user.
 * @param {Options} o @param {User} u @param {PaneRow[]} listed
 * @param {Map<number, import('./proc.mjs').Proc>} procs @param {ClaudeProc[]} claudes
 * @returns {Promise<Snapshot|null>}
 */
async function snapshotOf(o, u, listed, procs, claudes) {
  const { rows, left, over } = screenRows(listed);
  if (left.sessions || left.windowNames || left.groups || left.layouts) log('warning', 'names over the cap not saved', { user: u.name, ...left });
  if (over) {
    log('err', 'snapshot over the cap refused; previous snapshot kept', { user: u.name, why: over });
    return null;
  }
  const own = ownPanes(o.proc, u, rows);
  if (own.foreign.length) log('warning', "pane pid not the user's own process; its cwd not read", { user: u.name, panes: own.foreign.length, pids: own.foreign.slice(0, 8).join(',') });
  const byPane = claudesByPane(claudes.filter((c) => c.uid === u.uid), rows, own.cwds, procs, new Transcripts(u.uid));
  const { sessions, cwds } = buildSessions(rows, byPane, own.cwds);
  await settleCwds(u, cwds);
  return { format: SNAPSHOT_FORMAT, createdAt: new Date().toISOString(), host: os.hostname(), user: u.name, uid: u.uid, home: u.home, socket: socketPath(u), sessions };
}

/**
 * With --names lobby, the sessions the lobby does not name (its pool slots, anything else)
 * are left out; a user left with none keeps the previous snapshot, as with no server.
 * @param {Options} o @param {Map<string, PaneRow[]>} panes
 */
function lobbyOnly(o, panes) {
  if (o.names !== 'lobby') return;
  for (const [name, rows] of panes) {
    const kept = rows.filter((r) => LOBBY_NAME_RE.test(r.session));
    const outside = new Set(rows.filter((r) => !LOBBY_NAME_RE.test(r.session)).map((r) => r.sessionId)).size;
    if (outside) log('info', "sessions outside the lobby's names not saved", { user: name, sessions: outside });
    if (kept.length) panes.set(name, kept);
    else panes.delete(name);
  }
}

/**
 * The user's live sessions now, by the same rules as save (names, panes, conversations);
 * null when the user has no server or no session. Nothing is written.
 * @param {Options} o @param {User} u @returns {Promise<Snapshot|null>}
 */
export async function captureLive(o, u) {
  const r = await listPanes(u);
  if (r.state === 'error') throw new Error(`cannot list tmux panes: ${r.error}`);
  if (r.state === 'none') return null;
  const panes = new Map([[u.name, r.rows]]);
  lobbyOnly(o, panes);
  const rows = panes.get(u.name);
  if (!rows) return null;
  const procs = scanProc(o.proc);
  return snapshotOf(o, u, rows, procs, findClaudes(o.proc, procs, new Map([[u.uid, u]])));
}

/**
 * Ask every user's server (all at once): user name -> rows, for those with panes.
 * @param {User[]} users @returns {Promise<{panes: Map<string, PaneRow[]>, bad: number}>}
 */
async function listAll(users) {
  /** @type {Map<string, PaneRow[]>} */
  const panes = new Map();
  let bad = 0;
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
  return { panes, bad };
}

/**
 * Write each built snapshot (not yet `last`); those that changed are returned. Said once per
 * change, not every 5 minutes: claude panes without a resumable conversation.
 * @param {Options} o @param {{u: User, snap: Snapshot}[]} built
 */
async function writeAll(o, built) {
  /** @type {{u: User, file: string, stats: Record<string, number>}[]} */
  const pending = [];
  let bad = 0;
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
        for (const s of snap.sessions)
          for (const w of s.windows)
            for (const p of w.panes)
              if (p.claude && p.claude.status !== 'ok')
                log('notice', 'claude pane without a resumable conversation', { user: u.name, session: s.name, window: w.index, pane: p.index, status: p.claude.status, cwd: p.cwd });
      } catch (e) {
        if (e instanceof SnapshotTooLarge) log('err', 'snapshot over the cap refused; previous snapshot kept', { user: u.name, why: e.message });
        else log('err', 'save failed; previous snapshot kept', { user: u.name, error: errMsg(e) });
        bad++;
      }
    }),
    PARALLEL,
  );
  return { pending, bad };
}

/** @param {Options} o @returns {Promise<number>} */
export async function cmdSave(o) {
  const why = saveBlocked();
  if (why) {
    log('notice', 'not saving', { reason: why });
    return EXIT.SKIPPED;
  }
  const { users, failed } = loadUsers(o);
  ensureStateRoot(o);
  const release = acquireLock(o.stateDir, 5_000);
  if (!release) {
    log('notice', 'another tmux-persist run holds the lock; not saving');
    return EXIT.SKIPPED;
  }
  try {
    // 1. ask every tmux server first (all at once), 2. one /proc pass, 3. resolve, 4. write
    const { panes, bad: listBad } = await listAll(users);
    lobbyOnly(o, panes);
    let bad = failed.length + listBad;
    if (!panes.size) return bad ? EXIT.PARTIAL : EXIT.OK;
    const procs = scanProc(o.proc);
    const usersByUid = new Map(users.filter((u) => panes.has(u.name)).map((u) => [u.uid, u]));
    const claudes = findClaudes(o.proc, procs, usersByUid);
    /** @type {{u: User, snap: Snapshot}[]} */
    const built = [];
    const mine = users.filter((u) => panes.has(u.name));
    const snaps = await inParallel(
      mine.map((u) => async () => {
        try {
          return await snapshotOf(o, u, /** @type {PaneRow[]} */ (panes.get(u.name)), procs, claudes);
        } catch (e) {
          log('err', 'save failed; previous snapshot kept', { user: u.name, error: errMsg(e) });
          return null;
        }
      }),
      PARALLEL,
    );
    for (const [k, u] of mine.entries()) {
      const snap = snaps[k];
      if (snap) built.push({ u, snap });
      else bad++;
    }
    const written = await writeAll(o, built);
    bad += written.bad;
    const pending = written.pending;
    // the state may have been taken while things were being torn down: check once more
    // before any `last` moves, and drop the new files if a shutdown began meanwhile
    const stop = pending.length ? saveBlocked() : null;
    await inParallel(
      pending.map((p) => async () => {
        const dir = stateDirOf(o, p.u.name);
        try {
          if (stop) {
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
    if (stop) {
      log('notice', 'not saving', { reason: stop });
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
