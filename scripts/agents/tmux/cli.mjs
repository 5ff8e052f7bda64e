// @ts-check
/** tmux-persist: the command line (options, usage) and main. */
import { parseArgv, tryParse } from '../common/args.mjs';
import { USERS_FILE } from '../common/users.mjs';
import { EXIT, FatalError, LOGCFG, USER_RE, UsageError, log } from './core.mjs';
import { cmdStatus } from './plan.mjs';
import { cmdRestore } from './restore.mjs';
import { cmdSave } from './save.mjs';

/** @typedef {import('./core.mjs').Options} Options */

export const DEFAULTS = Object.freeze({
  usersFile: USERS_FILE,
  stateDir: '/var/lib/tmux-persist',
  keep: 10,
  claudeBin: 'claude',
  proc: '/proc',
});

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
  --per-pane          restore: one tmux call per step, no batching (the path a failed batch
                      falls back to; for comparison and debugging)
  --json              status: machine-readable output
  -v, --verbose       debug logging`;
}


const VALUED = ['users-file', 'state-dir', 'keep', 'user', 'claude-bin', 'proc', 'snapshot', 'spawn'];
const FLAGS = ['json', 'dry-run', 'per-pane', 'verbose', 'help'];

/** @param {string[]} argv @returns {Options} */
export function parseArgs(argv) {
  const { opts, positional } = parseArgv(argv, { valued: VALUED, flags: FLAGS, aliases: { '-v': 'verbose', '-h': 'help' } });
  const extra = positional.find((a, i) => i > 0 || a.startsWith('-'));
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`);
  const v = (/** @type {string} */ k) => (typeof opts[k] === 'string' ? /** @type {string} */ (opts[k]) : null);
  /** @type {Options} */
  const o = {
    cmd: positional[0] ?? '',
    usersFile: v('users-file') ?? DEFAULTS.usersFile,
    stateDir: v('state-dir') ?? DEFAULTS.stateDir,
    keep: DEFAULTS.keep,
    user: null,
    claudeBin: DEFAULTS.claudeBin,
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
  const user = v('user');
  if (user !== null) {
    if (!USER_RE.test(user)) throw new UsageError(`invalid user name ${JSON.stringify(user)}`);
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
  if (!o.help && !['save', 'restore', 'status'].includes(o.cmd)) throw new UsageError(o.cmd ? `unknown command ${o.cmd}` : 'missing command');
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
    return await cmdStatus(o);
  } catch (e) {
    if (e instanceof FatalError) {
      log('err', e.message);
      return EXIT.FATAL;
    }
    log('err', 'unexpected error', { error: e instanceof Error ? e.stack || e.message : String(e) });
    return EXIT.FATAL;
  }
}
