// @ts-check
/**
 * tmux-persist: the restore planner, shared by restore and status. From the snapshot to
 * restore, the live sessions and the conversations already running, decide per session,
 * window and pane what a restore does (create, skip, claude or shell) and why.
 */
import path from 'node:path';
import { EXIT, LOBBY_NAME_RE, PARALLEL, errMsg, inParallel } from './core.mjs';
import { listSessions, userDirs } from './client.mjs';
import { LIMITS, usableName, usablePath } from './limits.mjs';
import { Transcripts, confinedConfigDir, findClaudes, resolveClaudes, scanProc } from './proc.mjs';
import { forgotten, loadSnapshot, readTombstones, stateDirOf } from './store.mjs';
import { loadUsers } from './users.mjs';

/**
 * @typedef {import('./core.mjs').Options} Options @typedef {import('./core.mjs').User} User
 * @typedef {import('./client.mjs').LiveSessions} LiveSessions @typedef {import('./proc.mjs').ClaudeProc} ClaudeProc
 * @typedef {import('./store.mjs').Snapshot} Snapshot
 */

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

/** @typedef {Map<string, 'ok'|'no'|'missing'>} Dirs what the user may enter (client.mjs userDirs) */
/** Why a pane cannot come back in `cwd`, or null. @param {Dirs} dirs @param {string} cwd */
function cwdProblem(dirs, cwd) {
  const d = usablePath(cwd) ? dirs.get(cwd) : 'missing';
  return d === 'ok' ? null : d === 'no' ? 'cwd not enterable by the user' : 'cwd missing';
}

/**
 * @param {User} u @param {{file: string, snap: Snapshot}|null} loaded
 * @param {{state: string, names: Set<string>}} live @param {Set<string>} running
 * @param {Transcripts} tx @param {Dirs} dirs the snapshot's cwds, checked as the user
 * @param {{lobbyNames?: boolean, tombs?: Map<string, number>}} [rules] --names lobby; the user's tombstones
 * @returns {UserPlan}
 */
export function planUser(u, loaded, live, running, tx, dirs, rules = {}) {
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
    if (rules.lobbyNames && !LOBBY_NAME_RE.test(s.name)) {
      sp.action = 'skip';
      sp.reason = "name outside the lobby's ^[a-zA-Z0-9_-]{1,32}$";
      continue;
    }
    if (rules.tombs && forgotten(rules.tombs, s.name, loaded.snap.createdAt)) {
      sp.action = 'skip';
      sp.reason = 'forgotten (killed on purpose)';
      continue;
    }
    if (!s.name || !usableName(s.name)) {
      sp.action = 'skip';
      sp.reason = `name over ${LIMITS.nameBytes} bytes or with a NUL`;
      continue;
    }
    if (s.group && groupHead.has(s.group)) {
      sp.joinGroup = groupHead.get(s.group);
      continue;
    }
    for (const w of s.windows) {
      const autoName = !!w.autoName || !usableName(w.name);
      /** @type {WindowPlan} */
      const wp = { index: w.index, name: autoName ? '' : w.name, autoName, layout: w.layout, active: !!w.active, complete: true, panes: [] };
      for (const p of w.panes) {
        /** @type {PanePlan} */
        const pp = { index: p.index, cwd: p.cwd, active: !!p.active, action: 'shell' };
        const problem = cwdProblem(dirs, p.cwd);
        if (problem) {
          pp.action = 'skip';
          pp.reason = problem;
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
export function runningUuids(claudes, tx) {
  const set = new Set();
  for (const [, d] of resolveClaudes(claudes, tx)) if (d.uuid) set.add(d.uuid);
  // argv counts too (a stale one included: never start a conversation twice), except for a
  // claude whose session file says exactly which conversation it runs
  for (const c of claudes) if (c.argvUuid && !c.session) set.add(c.argvUuid);
  return set;
}

/**
 * @param {Options} o @param {User[]} users
 * @param {Map<string, LiveSessions>} [lives] filled with each user's live sessions (restore)
 * @param {(u: User) => {file: string, snap: Snapshot}|null} [load] the snapshot to plan from (default: --snapshot, `last`, the newest)
 * @returns {Promise<UserPlan[]>}
 */
export async function planAll(o, users, lives, load = (/** @type {User} */ u) => loadSnapshot(o, stateDirOf(o, u.name))) {
  const procs = scanProc(o.proc);
  const byUid = new Map(users.map((u) => [u.uid, u]));
  const claudes = findClaudes(o.proc, procs, byUid);
  const loads = users.map((u) => {
    /** @type {{file: string, snap: Snapshot}|null} */
    let loaded = null;
    /** @type {string|undefined} */
    let error;
    try {
      loaded = load(u);
      if (loaded && (loaded.snap.user !== u.name || loaded.snap.uid !== u.uid)) throw new Error(`${loaded.file} belongs to ${loaded.snap.user}/${loaded.snap.uid}`);
    } catch (e) {
      loaded = null;
      error = errMsg(e);
    }
    return { loaded, error };
  });
  // every server at once, and each snapshot's cwds checked as its user
  /** @type {LiveSessions[]} */
  const live = await inParallel(
    users.map((u, k) => async () => (loads[k].loaded ? listSessions(u) : { state: 'unknown', names: new Set(), ids: new Map() })),
    PARALLEL,
  );
  /** @type {(Dirs|Error)[]} */
  const dirs = await inParallel(
    users.map((u, k) => async () => {
      const snap = loads[k].loaded?.snap;
      const cwds = snap ? snap.sessions.flatMap((s) => s.windows.flatMap((w) => w.panes.map((p) => p.cwd))).filter(usablePath) : [];
      return userDirs(u, cwds).catch((e) => (e instanceof Error ? e : new Error(String(e))));
    }),
    PARALLEL,
  );
  /** @type {UserPlan[]} */
  const plans = [];
  for (const [k, u] of users.entries()) {
    const { loaded, error } = loads[k];
    if (lives) lives.set(u.name, live[k]);
    const d = dirs[k];
    if (live[k].state === 'error' || d instanceof Error) {
      const why = d instanceof Error ? errMsg(d) : `tmux: ${live[k].error}`;
      plans.push({ user: u.name, snapshot: loaded && loaded.file, createdAt: null, server: live[k].state === 'error' ? 'error' : live[k].state === 'ok' ? 'running' : 'none', sessions: [], error: why });
      continue;
    }
    const tx = new Transcripts(u.uid);
    const plan = planUser(u, loaded, live[k], runningUuids(claudes.filter((c) => c.uid === u.uid), tx), tx, d, { lobbyNames: o.names === 'lobby', tombs: readTombstones(o, u.name) });
    if (error) plan.error = error;
    plans.push(plan);
  }
  return plans;
}

// ---------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------

/** @param {Options} o @returns {Promise<number>} */
export async function cmdStatus(o) {
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
