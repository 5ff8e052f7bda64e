// @ts-check
/** tmux-persist: the command line (options, usage) and main. */
import fs from 'node:fs';
import { parseArgv, tryParse } from '../common/args.mjs';
import { USERS_FILE } from '../common/users.mjs';
import { DEFAULT_RESUME_ARGS, EXIT, FatalError, LOGCFG, USER_RE, UsageError, errMsg, log } from './core.mjs';
import { cmdImportLegacy } from './legacy.mjs';
import { LOBBY_VERBS } from './lobby.mjs';
import { cmdStatus } from './plan.mjs';
import { cmdRestore } from './restore.mjs';
import { cmdSave } from './save.mjs';

/** @typedef {import('./core.mjs').Options} Options */

export const DEFAULTS = Object.freeze({
  usersFile: USERS_FILE,
  stateDir: '/var/lib/tmux-persist',
  config: '/etc/workstations/tmux-persist.json',
  keep: 10,
  claudeBin: 'claude',
  proc: '/proc',
});

export function usage() {
  return `usage: tmux-persist save|restore [USER]|status [options]
       tmux-persist snapshots USER | snapshot USER TS | restore-selection USER TS NAME... |
                    restore-one USER NAME|UUID | history [USER] | forget USER SESSION |
                    import-legacy [USER]   (the legacy store's snapshots into ours)
  --users-file FILE   roster export (default ${DEFAULTS.usersFile})
  --state-dir DIR     snapshots, one 0700 dir per user (default ${DEFAULTS.stateDir})
  --config FILE       root-owned JSON: {"resumeArgs": [...], "names": "lobby"|"all"}
                      (default ${DEFAULTS.config}; a missing file means the defaults)
  --keep N            snapshots kept per user (default ${DEFAULTS.keep})
  --user NAME         only this roster user
  --claude-bin CMD    the program a restored conversation runs (default claude)
  --resume-args ARGS  its arguments, words split on spaces; {uuid} and {session} are
                      replaced (default "${DEFAULT_RESUME_ARGS.join(' ')}"; must hold
                      "--resume {uuid}" or "-r {uuid}")
  --names MODE        lobby: only sessions named ^[a-zA-Z0-9_-]{1,32}$ are saved and
                      restored (default); all: any name tmux stores
  --proc DIR          procfs root (default /proc)
  --snapshot NAME     restore/status from this snapshot (file name, "last" or "boot")
  --spawn MODE        how restore starts a tmux server: auto|scope|direct (default auto)
  --dry-run           restore: print the plan only (same as status)
  --per-pane          restore: one tmux call per step, no batching (the path a failed batch
                      falls back to; for comparison and debugging)
  --json              status: machine-readable output
  -v, --verbose       debug logging`;
}

const VALUED = ['users-file', 'state-dir', 'config', 'keep', 'user', 'claude-bin', 'resume-args', 'names', 'proc', 'snapshot', 'spawn'];
const FLAGS = ['json', 'dry-run', 'per-pane', 'verbose', 'help'];
/** command -> [least, most] positional arguments after it; the first is the user where there is one */
const ARITY = /** @type {Record<string, [number, number]>} */ ({
  save: [0, 0], status: [0, 0], restore: [0, 1], snapshots: [1, 1], snapshot: [2, 2],
  'restore-selection': [3, Infinity], 'restore-one': [2, 2], history: [0, 1], forget: [2, 2],
  'import-legacy': [0, 1],
});

/**
 * The resume arguments: words, {uuid} once and right after --resume or -r (so a restored
 * conversation is recognised by its wrapper's argv, as save reads it).
 * @param {readonly string[]} words
 */
export function checkResumeArgs(words) {
  const at = words.indexOf('{uuid}');
  if (!words.length || words.some((w) => !w || w.includes('\0'))) throw new UsageError('resume arguments: empty word');
  if (at < 1 || words.lastIndexOf('{uuid}') !== at || !['--resume', '-r'].includes(words[at - 1]))
    throw new UsageError('resume arguments must hold "--resume {uuid}" (or "-r {uuid}") exactly once');
  return Object.freeze([...words]);
}

/**
 * The root-owned config file (JSON), or {} when it does not exist. A file another user may
 * write is refused: it decides what runs in every user's restored panes.
 * @param {string} file @returns {{resumeArgs?: string[], names?: string}}
 */
function readConfig(file) {
  let st;
  try {
    st = fs.lstatSync(file);
  } catch (e) {
    if (/** @type {NodeJS.ErrnoException} */ (e).code === 'ENOENT') return {};
    throw new UsageError(`config ${file}: ${errMsg(e)}`);
  }
  if (!st.isFile() || st.uid !== 0 || (st.mode & 0o022)) throw new UsageError(`config ${file}: must be a regular file owned by root, not group/world-writable`);
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`config ${file}: ${errMsg(e)}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`config ${file}: not a JSON object`);
  const extra = Object.keys(doc).filter((k) => k !== 'resumeArgs' && k !== 'names');
  if (extra.length) throw new UsageError(`config ${file}: unknown key ${extra[0]}`);
  if (doc.resumeArgs !== undefined && (!Array.isArray(doc.resumeArgs) || doc.resumeArgs.some((/** @type {unknown} */ w) => typeof w !== 'string')))
    throw new UsageError(`config ${file}: resumeArgs must be a list of strings`);
  return doc;
}

/** @param {string} v */
function namesMode(v) {
  if (v !== 'lobby' && v !== 'all') throw new UsageError('--names must be lobby or all');
  return v;
}

/** @param {string[]} argv @returns {Options} */
export function parseArgs(argv) {
  const { opts, positional } = parseArgv(argv, { valued: VALUED, flags: FLAGS, aliases: { '-v': 'verbose', '-h': 'help' } });
  const dash = positional.find((a) => a.startsWith('-'));
  if (dash !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(dash)}`);
  const v = (/** @type {string} */ k) => (typeof opts[k] === 'string' ? /** @type {string} */ (opts[k]) : null);
  const config = readConfig(v('config') ?? DEFAULTS.config);
  /** @type {Options} */
  const o = {
    cmd: positional[0] ?? '',
    args: positional.slice(1),
    usersFile: v('users-file') ?? DEFAULTS.usersFile,
    stateDir: v('state-dir') ?? DEFAULTS.stateDir,
    keep: DEFAULTS.keep,
    user: null,
    claudeBin: DEFAULTS.claudeBin,
    resumeArgs: checkResumeArgs(v('resume-args')?.split(' ').filter(Boolean) ?? config.resumeArgs ?? DEFAULT_RESUME_ARGS),
    names: namesMode(v('names') ?? config.names ?? 'lobby'),
    proc: v('proc') ?? DEFAULTS.proc,
    snapshot: v('snapshot'),
    spawn: 'auto',
    json: !!opts.json,
    dryRun: !!opts['dry-run'],
    perPane: !!opts['per-pane'],
    verbose: !!opts.verbose,
    help: !!opts.help,
  };
  const keep = v('keep');
  if (keep !== null) {
    if (!/^[1-9][0-9]*$/.test(keep)) throw new UsageError('--keep must be a positive integer');
    o.keep = Number(keep);
  }
  const arity = ARITY[o.cmd];
  if (!o.help && !arity) throw new UsageError(o.cmd ? `unknown command ${o.cmd}` : 'missing command');
  if (arity && (o.args.length < arity[0] || o.args.length > arity[1])) throw new UsageError(`${o.cmd}: wrong number of arguments`);
  const user = v('user') ?? (arity && arity[1] > 0 ? o.args[0] ?? null : null);
  if (user !== null) {
    if (!USER_RE.test(user)) throw new UsageError(`invalid user name ${JSON.stringify(user)}`);
    if (o.args.length && arity && arity[1] > 0 && v('user') !== null && o.args[0] !== user) throw new UsageError('--user and the USER argument differ');
    o.user = user;
  }
  const bin = v('claude-bin');
  if (bin !== null) {
    if (!bin) throw new UsageError('--claude-bin is empty');
    o.claudeBin = bin;
  }
  const spawn = v('spawn');
  if (spawn !== null) {
    if (spawn !== 'auto' && spawn !== 'scope' && spawn !== 'direct') throw new UsageError('--spawn must be auto, scope or direct');
    o.spawn = spawn;
  }
  return o;
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

/** @param {string[]} argv @returns {Promise<number>} */
export async function main(argv) {
  const parsed = tryParse(parseArgs, argv);
  if (parsed.refused !== undefined) {
    process.stderr.write(`tmux-persist: ${parsed.refused}\n${usage()}\n`);
    return EXIT.USAGE;
  }
  const o = parsed.opts;
  if (o.help) {
    process.stdout.write(usage() + '\n');
    return EXIT.OK;
  }
  LOGCFG.verbose = o.verbose;
  LOGCFG.tag = o.cmd;
  process.umask(0o077);
  try {
    if (process.getuid && process.getuid() !== 0) throw new FatalError('must run as root');
    if (o.cmd === 'save') return await cmdSave(o);
    if (o.cmd === 'restore') return await cmdRestore(o);
    if (o.cmd === 'status') return await cmdStatus(o);
    if (o.cmd === 'import-legacy') return await cmdImportLegacy(o);
    return await LOBBY_VERBS[o.cmd](o);
  } catch (e) {
    if (e instanceof FatalError) {
      log('err', e.message);
      return EXIT.FATAL;
    }
    log('err', 'unexpected error', { error: e instanceof Error ? e.stack || e.message : String(e) });
    return EXIT.FATAL;
  }
}
