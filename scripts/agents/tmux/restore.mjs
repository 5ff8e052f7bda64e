// @ts-check
/**
 * tmux-persist restore: the planned sessions of each user recreated in as few tmux clients
 * as the command language allows (see below), users several at once.
 */
import { EXIT, FatalError, PARALLEL, RESUME_MARK, RESUME_SCRIPT, errMsg, inParallel, log } from './core.mjs';
import { ASYNC_CLIENT, CALLS, FSEP, RSEP, SYNC_CLIENT } from './client.mjs';
import { tmuxArg, tmuxLiteral, unvis } from './names.mjs';
import { cmdStatus, planAll } from './plan.mjs';
import { acquireLock, ensureStateRoot, recordHistory, stateDirOf, symlinkAtomic } from './store.mjs';
import { loadUsers } from './users.mjs';

/**
 * @typedef {import('./core.mjs').Options} Options @typedef {import('./core.mjs').User} User
 * @typedef {import('./client.mjs').LiveSessions} LiveSessions @typedef {import('./client.mjs').Client} Client
 * @typedef {import('./plan.mjs').UserPlan} UserPlan @typedef {import('./plan.mjs').SessionPlan} SessionPlan
 * @typedef {import('./plan.mjs').WindowPlan} WindowPlan @typedef {import('./plan.mjs').PanePlan} PanePlan
 */

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
 * @param {Options} o @param {PanePlan} p @param {string} session the session's name ({session})
 */
export function paneCommand(o, p, session) {
  if (p.action !== 'claude' || !p.uuid) return [];
  const uuid = p.uuid;
  const env = p.configDir ? ['-e', tmuxArg(`CLAUDE_CONFIG_DIR=${p.configDir}`)] : [];
  const args = o.resumeArgs.map((a) => tmuxArg(a.replaceAll('{uuid}', uuid).replaceAll('{session}', session)));
  return [...env, '/bin/sh', '-c', RESUME_SCRIPT, RESUME_MARK, tmuxArg(o.claudeBin), ...args];
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
  for (const sp of plan.sessions) {
    if (sp.action !== 'create') continue;
    /** @type {SessState} */
    const S = { sp, name: tmuxLiteral(unvis(sp.name)), sid: '', windows: [], perStep: false, dead: false, failed: false };
    sessions.push(S);
    if (sp.joinGroup) {
      joins.push(groupedSessionStep(u, S, byName.get(sp.joinGroup), sp.joinGroup, live));
      continue;
    }
    byName.set(sp.name, S);
    for (const w of sp.windows) {
      const panes = w.panes.filter((p) => p.action !== 'skip');
      if (panes.length) S.windows.push({ plan: w, panes: panes.map((p) => ({ plan: p, made: null })), wid: '', at: -1, moved: false, assumed: false, dead: false, splitFailed: false, layoutFailed: false, freeIndex: false });
    }
    sessionSteps(o, u, S, creates, rest);
  }
  return { sessions, steps: [...creates, ...rest, ...joins] };
}

/** can S be targeted now: by id, or by an exact name @param {SessState} S */
const known = (S) => !!S.sid || !S.sp.name.startsWith('$');
/** (a prefix: callers append ':…', or tmuxArg it when it is the whole argument) @param {SessState} S */
const sessTarget = (S) => S.sid || `=${S.sp.name}`;
/** a marker after a command that prints nothing @param {SessState} S @param {number} n @param {string[]} cmd */
const marked = (S, n, cmd) => [...cmd, ';', 'display-message', '-p', '-t', S.sid || `=${S.sp.name}:`, recFmt(n)];
/** @param {SessState} S @param {WinState} W */
const winTarget = (S, W) => W.wid || `${sessTarget(S)}:${W.plan.index}`;
const nameArgs = (/** @type {WinState} */ W) => (W.plan.autoName ? [] : ['-n', tmuxLiteral(W.plan.name)]);

/**
 * A session of a group: made after the group's head (restored here, or live), or given up.
 * @param {User} u @param {SessState} S @param {SessState|undefined} head @param {string} group @param {LiveSessions} live
 * @returns {Step}
 */
function groupedSessionStep(u, S, head, group, live) {
  const ctx = { user: u.name, session: S.sp.name };
  return {
    S,
    what: 'new-session (grouped)',
    ready: () => !head || known(head),
    argv: (n) => ['new-session', '-d', '-s', S.name, '-t', head ? tmuxArg(sessTarget(head)) : live.ids.get(group) || '', '-P', '-F', recFmt(n)],
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
  };
}

/** The session's size: its largest saved layout, within 80x24 and 1000x400. @param {WinState[]} windows */
function sessionSize(windows) {
  let x = 0;
  let y = 0;
  for (const W of windows) {
    const sz = layoutSize(W.plan.layout);
    if (sz) {
      x = Math.max(x, sz.x);
      y = Math.max(y, sz.y);
    }
  }
  return { x: Math.min(Math.max(x || 200, 80), 1000), y: Math.min(Math.max(y || 50, 24), 400) };
}

/**
 * The steps of one (ungrouped) session: its new-session (into `creates`), then (into `rest`)
 * its first window moved to its saved index, each window's panes and layout, and its focus.
 * @param {Options} o @param {User} u @param {SessState} S @param {Step[]} creates @param {Step[]} rest
 */
function sessionSteps(o, u, S, creates, rest) {
  const ctx = { user: u.name, session: S.sp.name };
  const { x, y } = sessionSize(S.windows);
  const W0 = S.windows[0];
  const I0 = W0.plan.index;
  const base = Number.isInteger(S.sp.baseIndex) ? /** @type {number} */ (S.sp.baseIndex) : null;
  creates.push({
    S,
    what: 'new-session',
    argv: (n) => ['new-session', '-d', '-s', S.name, '-x', String(x), '-y', String(y), '-c', tmuxLiteral(W0.panes[0].plan.cwd), ...nameArgs(W0),
      '-P', '-F', recFmt(n), ...paneCommand(o, W0.panes[0].plan, unvis(S.sp.name))],
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
  const moveFail = (/** @type {string} */ err) => {
    W0.moved = true;
    log('debug', 'window index not restored', { ...ctx, window: I0, error: err });
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
    fail: moveFail,
  });
  for (const W of S.windows) windowSteps(o, { ...ctx, window: W.plan.index }, S, W, W === W0, x, rest);
  // the base-index taken on trust was not the server's: move the first window now
  rest.push({
    S,
    what: 'move-window',
    skip: () => !W0.assumed || W0.at < 0 || W0.at === I0 || W0.moved,
    argv: (n) => marked(S, n, ['move-window', '-s', W0.wid, '-t', `${S.sid}:${I0}`]),
    done: moveDone,
    fail: moveFail,
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

/**
 * One window's steps: the window itself (unless it is the first, made by new-session), its
 * panes, then its layout.
 * @param {Options} o @param {Record<string, unknown>} wctx @param {SessState} S @param {WinState} W
 * @param {boolean} isFirst @param {number} x the session's width @param {Step[]} rest
 */
function windowSteps(o, wctx, S, W, isFirst, x, rest) {
  const first = W.panes[0];
  if (!isFirst) {
    rest.push({
      S,
      what: 'new-window',
      ready: () => known(S),
      argv: (n) => ['new-window', '-d', '-t', W.freeIndex ? `${sessTarget(S)}:` : `${sessTarget(S)}:${W.plan.index}`, '-c', tmuxLiteral(first.plan.cwd), ...nameArgs(W),
        '-P', '-F', recFmt(n), ...paneCommand(o, first.plan, unvis(S.sp.name))],
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
        return false;
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
        '-P', '-F', recFmt(n), ...paneCommand(o, p.plan, unvis(S.sp.name)), ...(columns ? [] : [';', 'select-layout', '-t', winTarget(S, W), 'tiled'])],
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
  const savedLayout = W.plan.complete && k > 1 && !!W.plan.layout; // none: over its cap when saved
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

/**
 * Recreate one user's planned sessions. @returns {Promise<{created: number, failed: number}>}
 * @param {Options} o @param {User} u @param {UserPlan} plan @param {LiveSessions} live
 */
export async function restoreUser(o, u, plan, live) {
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
export async function cmdRestore(o) {
  if (o.dryRun) return cmdStatus(o);
  const { users, failed } = loadUsers(o);
  ensureStateRoot(o);
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
        if (r.created) recordHistory(o, u.name, 'restored', `${plan.snapshot}: ${r.created} sessions`);
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
