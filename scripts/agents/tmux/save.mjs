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
import { EXIT, FatalError, PARALLEL, SNAPSHOT_FORMAT, errMsg, inParallel, log, readlinkOr } from './core.mjs';
import { listPanes, rootRun, socketPath } from './client.mjs';
import { Transcripts, findClaudes, resolveClaudes, scanProc } from './proc.mjs';
import { acquireLock, ensureStateRoot, prepareSnapshot, prune, stateDirOf, symlinkAtomic } from './store.mjs';
import { loadUsers } from './users.mjs';

/**
 * @typedef {import('./core.mjs').Options} Options @typedef {import('./core.mjs').User} User
 * @typedef {import('./client.mjs').PaneRow} PaneRow @typedef {import('./proc.mjs').UuidDecision} UuidDecision
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
            identifiedBy: c.identifiedBy,
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
