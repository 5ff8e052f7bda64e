// @ts-check
/** claude-token-renew: the command line (options, usage) and main. */
import { parseArgv, tryParse } from '../common/args.mjs';
import { EXIT, LOGCFG, UsageError, log, out } from './core.mjs';
import { cmdRun } from './run.mjs';
import { cmdStatus } from './status.mjs';
import { cmdStore } from './store.mjs';

// ---------------------------------------------------------------------------------------
// CLI

export function usage() {
  return `usage: claude-token-renew <run|status|store-setup-token> [options]
  run      one pass: sync with Vault, refresh if the access token expires soon, alert (for the timer);
           in setup-token mode: deliver the stored token, check it, warn before it expires
  status   show the state without secrets and without changing anything
  store-setup-token
           store the token \`claude setup-token\` printed (read from stdin, never argv) in your
           Vault secret and deliver it to ~/.claude-oauth-token (README "Claude logins")
options:
  --config FILE            agent config (default /etc/workstations/claude-token-renew.json)
  --users-file FILE        users.json (default: config usersFile)
  --user NAME              the user (default: the current user)
  --home DIR               home directory (default: $HOME)
  --cred-file FILE         Claude credentials (default: $CLAUDE_CONFIG_DIR or ~/.claude, /.credentials.json)
  --vault-cred FILE        AppRole credential (default ~/.config/claude-token-renew/vault.json)
  --state-dir DIR          state dir (default ~/.local/state/claude-token-renew)
  --notice-file FILE       notice shown by start-claude.sh (default ~/.claude-token-renew.notice)
  --alert-socket PATH      the alert notifier's socket (default: config alertSocket, else /run/workstations/alert.sock; "" = no alerts)
  --offline                status: do not contact Vault
  --json                   status: JSON output
  --quiet                  run: only warnings and errors on stderr
  --expires YYYY-MM-DD     store-setup-token: the token's expiry (default: a year from now)
  --now MS                 testing: pretend the time is MS (epoch ms) for token expiry decisions
exit codes: 0 ok, 1 internal error, 2 usage/config, 3 transient, 4 login required,
            5 identity mismatch, 6 Vault access denied`;
}

/** @param {string[]} argv */
/** @param {string[]} argv */
export function parseArgs(argv) {
  const { opts, positional } = parseArgv(argv, {
    flags: ['offline', 'json', 'quiet', 'help'],
    valued: ['config', 'users-file', 'user', 'home', 'cred-file', 'vault-cred', 'state-dir', 'notice-file', 'alert-socket', 'now', 'expires'],
  });
  return { cmd: positional[0], rest: positional.slice(1), opts: /** @type {Record<string, string|boolean>} */ ({ config: '/etc/workstations/claude-token-renew.json', ...opts }) };
}

/** @param {string[]} argv @returns {Promise<number>} */
export async function main(argv) {
  const parsed = tryParse(parseArgs, argv);
  if (parsed.refused !== undefined) {
    process.stderr.write(`${parsed.refused}\n${usage()}\n`);
    return EXIT.USAGE;
  }
  const { cmd, rest, opts } = parsed.opts;
  if (opts.help || cmd === 'help') {
    out(usage());
    return EXIT.OK;
  }
  if (rest.some((a) => a.startsWith('sk-ant-'))) {
    process.stderr.write('never pass a token as an argument: it is now in your shell history and in the process list; revoke it, run `claude setup-token` again, and paste the new one when store-setup-token asks\n');
    return EXIT.USAGE;
  }
  if (!['run', 'status', 'store-setup-token'].includes(cmd) || rest.length) {
    process.stderr.write(`${usage()}\n`);
    return EXIT.USAGE;
  }
  LOGCFG.quiet = !!opts.quiet;
  process.umask(0o077);
  try {
    return cmd === 'run' ? await cmdRun(opts) : cmd === 'status' ? await cmdStatus(opts) : await cmdStore(opts);
  } catch (e) {
    if (e instanceof UsageError) {
      log('error', e.message);
      return EXIT.USAGE;
    }
    log('error', `unexpected: ${e instanceof Error ? e.stack || e.message : String(e)}`);
    return EXIT.ERROR;
  }
}
