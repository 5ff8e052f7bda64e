// @ts-check
/**
 * tmux-persist: the verbs the team's web lobby calls (through its root wrappers), with the
 * arguments and output formats of the legacy tool (../shared/notes/team-devvm.md). Output is
 * tab-separated, one record per line, `-` for an empty field; times are `YYYYMMDDTHHMMSS`
 * (UTC, the snapshot's createdAt).
 *
 *   snapshots USER          `ts  count  newest|-`, newest first (`newest`: the one `last` names)
 *   snapshot USER TS        per saved session: `name  cwd  uuid  state  action  target  default
 *                           note`; state missing|live_same|live_other_conv|live_no_claude,
 *                           action new|skip|suffixed|in_place, default on|off (the picker's tick)
 *   restore-selection USER TS NAME...   exactly the named sessions of that snapshot, each as
 *                           `snapshot` decides; prints `name  action  target  result  note`
 *   restore-one USER NAME|UUID          the newest saved session of that name or conversation
 *   history [USER]          `ts  user  event  detail`, newest first: saved, restored, forgot
 *   forget USER SESSION     a tombstone: no snapshot taken before now brings SESSION back
 *
 * A session's cwd and uuid are its first resumable conversation's (a session has windows and
 * panes here, one row in the legacy store), else its active pane's. Decisions:
 *   forgotten after the snapshot     skip, off
 *   missing                          new, on (off, and a shell, if the conversation runs elsewhere)
 *   live_same                        skip, off
 *   live_other_conv                  suffixed: restored beside it as <name>-HHMM (the snapshot's
 *                                    time), on
 *   live_no_claude                   in_place: the conversation opens as a new window of that
 *                                    session, on
 *   a live session and nothing to resume, or the conversation running elsewhere: skip, off.
 * Restores take the run lock, as `restore` does, and go through the same planner (cwds and
 * transcripts checked as the user, never a conversation started twice).
 */
import fs from 'node:fs';
import path from 'node:path';
import { EXIT, FatalError, LOBBY_NAME_RE, UUID_RE, errMsg, log } from './core.mjs';
import { ASYNC_CLIENT, listSessions, userDirs } from './client.mjs';
import { tmuxLiteral } from './names.mjs';
import { Transcripts, confinedConfigDir, findClaudes, scanProc } from './proc.mjs';
import { planAll, runningUuids } from './plan.mjs';
import { paneCommand, restoreUser } from './restore.mjs';
import { captureLive } from './save.mjs';
import { acquireLock, addTombstone, ensureStateRoot, forgotten, pointer, readSnapshot, readTombstones, recordHistory, snapshotFiles, stateDirOf } from './store.mjs';
import { loadUsers } from './users.mjs';

/**
 * @typedef {import('./core.mjs').Options} Options @typedef {import('./core.mjs').User} User
 * @typedef {import('./store.mjs').Snapshot} Snapshot @typedef {import('./store.mjs').SessionRec} SessionRec
 * @typedef {{file: string, ts: string, snap: Snapshot}} Saved
 * @typedef {{name: string, cwd: string, uuid: string, configDir: string|null, claudeCwd: string,
 *   state: string, action: 'new'|'skip'|'suffixed'|'in_place', target: string, on: boolean, note: string, s: SessionRec}} Row
 */

class LobbyError extends Error {}

/** @param {string} iso */
export const tsOf = (iso) => new Date(iso).toISOString().replace(/[-:]/g, '').slice(0, 15);
const field = (/** @type {string|number} */ v) => (v === '' ? '-' : String(v).replace(/[\t\n]/g, ' '));
const line = (/** @type {(string|number)[]} */ f) => f.map(field).join('\t');

/** The one roster user the verb names. @param {Options} o @returns {User} */
function theUser(o) {
  const { users } = loadUsers(o);
  const u = users.find((x) => x.name === o.user);
  if (!u) throw new LobbyError(`${o.user} is not an active, opted-in roster user on this host`);
  return u;
}

/** The user's readable snapshots, newest first. @param {Options} o @param {User} u @returns {Saved[]} */
function series(o, u) {
  const dir = stateDirOf(o, u.name);
  /** @type {Saved[]} */
  const out = [];
  for (const file of fs.existsSync(dir) ? snapshotFiles(dir) : []) {
    try {
      const snap = readSnapshot(dir, file);
      if (snap.user === u.name && snap.uid === u.uid) out.push({ file, ts: tsOf(snap.createdAt), snap });
    } catch (e) {
      log('warning', 'unreadable snapshot skipped', { file: path.join(dir, file), error: errMsg(e) });
    }
  }
  return out.sort((a, b) => Date.parse(b.snap.createdAt) - Date.parse(a.snap.createdAt));
}

/** A saved session's row fields: its first resumable conversation, else its active pane. @param {SessionRec} s */
function summary(s) {
  const panes = s.windows.flatMap((w) => w.panes.map((p) => ({ w, p })));
  const c = panes.find((x) => x.p.claude && x.p.claude.status === 'ok' && x.p.claude.uuid);
  const pick = c ?? panes.find((x) => x.w.active && x.p.active) ?? panes[0];
  const claude = c?.p.claude;
  return { cwd: pick ? pick.p.cwd : '', uuid: claude?.uuid ?? '', configDir: claude?.configDir ?? null, claudeCwd: claude?.cwd || (pick ? pick.p.cwd : '') };
}

/**
 * The user's live sessions (name -> its conversations, and whether a claude runs there at
 * all) and every conversation the user runs anywhere.
 * @param {Options} o @param {User} u
 */
async function liveOf(o, u) {
  const snap = await captureLive(o, u);
  /** @type {Map<string, {uuids: Set<string>, claude: boolean}>} */
  const sessions = new Map();
  for (const s of snap?.sessions ?? []) {
    const claudes = s.windows.flatMap((w) => w.panes.map((p) => p.claude).filter((c) => !!c));
    sessions.set(s.name, { uuids: new Set(claudes.map((c) => c?.uuid ?? '').filter(Boolean)), claude: claudes.length > 0 });
  }
  const procs = scanProc(o.proc);
  const running = runningUuids(findClaudes(o.proc, procs, new Map([[u.uid, u]])), new Transcripts(u.uid));
  return { sessions, running };
}

/** `<name>-HHMM` of the snapshot's time (UTC), within the lobby's 32 characters. @param {string} name @param {string} iso */
const suffixed = (name, iso) => `${name.slice(0, 27)}-${tsOf(iso).slice(9, 13)}`;

/**
 * What a restore of each session of `saved` would do now.
 * @param {Saved} saved @param {Awaited<ReturnType<typeof liveOf>>} live @param {Map<string, number>} tombs @returns {Row[]}
 */
function decide(saved, live, tombs) {
  return saved.snap.sessions
    .filter((s) => LOBBY_NAME_RE.test(s.name))
    .map((s) => {
      const { cwd, uuid, configDir, claudeCwd } = summary(s);
      const l = live.sessions.get(s.name);
      const state = !l ? 'missing' : uuid && l.uuids.has(uuid) ? 'live_same' : l.claude ? 'live_other_conv' : 'live_no_claude';
      /** @type {Row} */
      const r = { name: s.name, cwd, uuid, configDir, claudeCwd, state, action: 'skip', target: s.name, on: false, note: '', s };
      const elsewhere = !!uuid && live.running.has(uuid) && state !== 'live_same';
      if (forgotten(tombs, s.name, saved.snap.createdAt)) r.note = 'forgotten';
      else if (state === 'missing') {
        r.action = 'new';
        r.on = !elsewhere;
        if (elsewhere) r.note = 'conversation running elsewhere: comes back as a shell';
      } else if (state === 'live_same') r.note = 'running';
      else if (!uuid) r.note = 'session exists; no conversation to resume';
      else if (elsewhere) r.note = 'conversation running elsewhere';
      else if (state === 'live_other_conv') {
        r.target = suffixed(s.name, saved.snap.createdAt);
        if (live.sessions.has(r.target)) r.note = `${r.target} exists too`;
        else [r.action, r.on, r.note] = ['suffixed', true, 'restored beside the live session'];
      } else [r.action, r.on, r.note] = ['in_place', true, 'opens as a new window of the live session'];
      return r;
    });
}

/** @param {Row} r */
const rowLine = (r) => line([r.name, r.cwd, r.uuid, r.state, r.action, r.target, r.on ? 'on' : 'off', r.note]);

/** @param {Options} o */
async function cmdSnapshots(o) {
  const u = theUser(o);
  const last = pointer(stateDirOf(o, u.name), 'last');
  const out = series(o, u).map((x) => line([x.ts, x.snap.sessions.filter((s) => LOBBY_NAME_RE.test(s.name)).length, x.file === last ? 'newest' : '-']));
  process.stdout.write(out.map((l) => l + '\n').join(''));
  return EXIT.OK;
}

/** The snapshot taken at TS (the newest of that second). @param {Options} o @param {User} u @param {string} ts */
function savedAt(o, u, ts) {
  if (!/^[0-9]{8}T[0-9]{6}$/.test(ts)) throw new LobbyError(`not a snapshot time (YYYYMMDDTHHMMSS): ${JSON.stringify(ts.slice(0, 40))}`);
  const saved = series(o, u).find((x) => x.ts === ts);
  if (!saved) throw new LobbyError(`${u.name} has no snapshot ${ts}`);
  return saved;
}

/** @param {Options} o */
async function cmdSnapshot(o) {
  const u = theUser(o);
  const saved = savedAt(o, u, o.args[1]);
  const rows = decide(saved, await liveOf(o, u), readTombstones(o, u.name));
  process.stdout.write(rows.map((r) => rowLine(r) + '\n').join(''));
  return EXIT.OK;
}

/**
 * Restores `rows` of `saved`: new and suffixed through the planner and the batched restore
 * (one derived snapshot holding just them, under their targets), in_place as one new window.
 * @param {Options} o @param {User} u @param {Saved} saved @param {Row[]} rows
 */
async function restoreRows(o, u, saved, rows) {
  ensureStateRoot(o);
  const release = acquireLock(o.stateDir, 120_000);
  if (!release) throw new FatalError('another tmux-persist run holds the lock');
  /** @type {Map<Row, string>} */
  const result = new Map();
  try {
    const create = rows.filter((r) => r.action === 'new' || r.action === 'suffixed');
    if (create.length) {
      const snap = { ...saved.snap, sessions: create.map((r) => ({ ...r.s, name: r.target, group: null })) };
      const lives = new Map();
      const [plan] = await planAll(o, [u], lives, () => ({ file: saved.file, snap }));
      if (plan.error) throw new LobbyError(plan.error);
      await restoreUser(o, u, plan, lives.get(u.name) ?? { state: 'unknown', names: new Set(), ids: new Map() });
      const now = await listSessions(u);
      for (const r of create) {
        const sp = plan.sessions.find((x) => x.name === r.target);
        result.set(r, sp?.action === 'skip' ? `skipped\t${sp.reason}` : now.names.has(r.target) ? 'restored' : 'failed');
      }
    }
    for (const r of rows.filter((x) => x.action === 'in_place')) result.set(r, await inPlace(o, u, r));
  } finally {
    release();
  }
  const done = rows.filter((r) => result.get(r) === 'restored').map((r) => r.target);
  if (done.length) recordHistory(o, u.name, 'restored', `${saved.ts}: ${done.join(' ')}`);
  for (const r of rows) process.stdout.write(line([r.name, r.action, r.target, ...(result.get(r) ?? `skipped\t${r.note}`).split('\t')]) + '\n');
  return rows.some((r) => result.get(r) === 'failed') ? EXIT.PARTIAL : EXIT.OK;
}

/** The conversation as a new window of the live session that has no claude. @param {Options} o @param {User} u @param {Row} r */
async function inPlace(o, u, r) {
  const dirs = await userDirs(u, [r.cwd]);
  if (dirs.get(r.cwd) !== 'ok') return 'skipped\tcwd not enterable by the user';
  const configDir = confinedConfigDir(r.configDir, u);
  if (!new Transcripts(u.uid).find(configDir, r.claudeCwd, r.uuid)) return 'skipped\ttranscript missing';
  const pane = { index: 0, cwd: r.cwd, active: true, action: /** @type {'claude'} */ ('claude'), uuid: r.uuid, ...(configDir !== path.join(u.home, '.claude') ? { configDir } : {}) };
  const t = await ASYNC_CLIENT.as(u, ['new-window', '-d', '-t', `=${r.name}:`, '-c', tmuxLiteral(r.cwd), ...paneCommand(o, pane, r.name)]);
  if (!t.ok) log('err', 'in-place restore failed', { user: u.name, session: r.name, error: t.stderr });
  return t.ok ? 'restored' : 'failed';
}

/** @param {Options} o */
async function cmdRestoreSelection(o) {
  const u = theUser(o);
  const saved = savedAt(o, u, o.args[1]);
  const rows = decide(saved, await liveOf(o, u), readTombstones(o, u.name));
  const names = o.args.slice(2);
  const missing = names.filter((n) => !rows.some((r) => r.name === n));
  if (missing.length) throw new LobbyError(`snapshot ${saved.ts} of ${u.name} has no session ${JSON.stringify(missing[0].slice(0, 40))}`);
  return restoreRows(o, u, saved, rows.filter((r) => names.includes(r.name)));
}

/** @param {Options} o */
async function cmdRestoreOne(o) {
  const u = theUser(o);
  const want = o.args[1];
  const byUuid = UUID_RE.test(want);
  if (!byUuid && !LOBBY_NAME_RE.test(want)) throw new LobbyError(`neither a session name nor a conversation uuid: ${JSON.stringify(want.slice(0, 40))}`);
  const live = await liveOf(o, u);
  const tombs = readTombstones(o, u.name);
  for (const saved of series(o, u)) {
    const row = decide(saved, live, tombs).find((r) => (byUuid ? r.uuid === want.toLowerCase() : r.name === want));
    if (row) return restoreRows(o, u, saved, [row]);
  }
  throw new LobbyError(`no snapshot of ${u.name} holds ${byUuid ? 'conversation' : 'session'} ${want}`);
}

/** @param {Options} o */
async function cmdHistory(o) {
  const { users } = loadUsers(o);
  /** @type {{t: number, l: string}[]} */
  const ev = [];
  for (const u of users) {
    for (const x of series(o, u)) ev.push({ t: Date.parse(x.snap.createdAt), l: line([x.ts, u.name, 'saved', `${x.snap.sessions.length} sessions`]) });
    for (const [n, e] of readTombstones(o, u.name)) ev.push({ t: e * 1000, l: line([tsOf(new Date(e * 1000).toISOString()), u.name, 'forgot', n]) });
    let text = '';
    try {
      text = fs.readFileSync(path.join(stateDirOf(o, u.name), 'history.tsv'), 'utf8');
    } catch {
      /* none yet */
    }
    for (const m of text.matchAll(/^([0-9]{1,12})\t([a-z]+)\t(.*)$/gm)) {
      ev.push({ t: Number(m[1]) * 1000, l: line([tsOf(new Date(Number(m[1]) * 1000).toISOString()), u.name, m[2], m[3]]) });
    }
  }
  process.stdout.write(ev.sort((a, b) => b.t - a.t).map((e) => e.l + '\n').join(''));
  return EXIT.OK;
}

/** @param {Options} o */
async function cmdForget(o) {
  const u = theUser(o);
  const session = o.args[1];
  if (!LOBBY_NAME_RE.test(session)) throw new LobbyError(`not a session name the lobby uses: ${JSON.stringify(session.slice(0, 40))}`);
  ensureStateRoot(o);
  await addTombstone(o, u.name, session, Math.floor(Date.now() / 1000));
  log('info', 'session forgotten: never restored from an older snapshot', { user: u.name, session });
  return EXIT.OK;
}

/** @param {(o: Options) => Promise<number>} f */
const verb = (f) => async (/** @type {Options} */ o) => {
  try {
    return await f(o);
  } catch (e) {
    if (!(e instanceof LobbyError)) throw e;
    process.stderr.write(`tmux-persist ${o.cmd}: ${e.message}\n`);
    return EXIT.PARTIAL;
  }
};

/** @type {Record<string, (o: Options) => Promise<number>>} */
export const LOBBY_VERBS = {
  snapshots: verb(cmdSnapshots),
  snapshot: verb(cmdSnapshot),
  'restore-selection': verb(cmdRestoreSelection),
  'restore-one': verb(cmdRestoreOne),
  history: verb(cmdHistory),
  forget: verb(cmdForget),
};
