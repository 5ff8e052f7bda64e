#!/usr/bin/env node
// @ts-check
/**
 * claude-token-renew: keeps one workstation user's Claude Code login alive.
 *
 * Runs as the user (claude-token-renew@<user>.service, User=%i) from a timer. One `run`:
 *   1. reads the Vault KV v2 metadata of the user's own path (AppRole login, cached token);
 *   2. takes Claude Code's own two mkdir locks (<credDir>/.oauth_refresh.lock, ~/.claude.lock),
 *      re-reads ~/.claude/.credentials.json under them, restores it from Vault only when the
 *      local copy is missing/corrupt or the Vault copy is strictly newer, and refreshes the
 *      OAuth token only when the access token expires within refreshMarginSeconds;
 *   3. checks the token's identity on the profile endpoint (email must equal the roster email);
 *   4. pushes to Vault with check-and-set after every rotation (its own or Claude's);
 *   5. raises one alert per incident (login required, login deadline near, identity
 *      mismatch, Vault access denied), a "resolved" alert when it clears, and keeps the notice
 *      file that start-claude.sh shows. Alerts are messages handed to the root-side notifier
 *      on /run/workstations/alert.sock (workstations-alert.socket), which posts them to Slack;
 *      this agent never sees the Slack webhook.
 * The layout it relies on is in docs/CONTRACTS.md, section "Claude token renewal".
 *
 * No npm dependencies; Node >= 18 (Debian bookworm). Never logs, prints or passes in argv a
 * token, a secret_id or a Vault token.
 *
 * Usage: claude-token-renew run|status [options]   (see usage() below)
 *
 * Exit codes (the most severe condition of the run wins, in this order):
 *   5  identity mismatch: the login belongs to another email; refused, nothing synced
 *   4  login required: invalid_grant, login deadline passed, or no credentials anywhere
 *   6  Vault access denied: AppRole credential missing/invalid/revoked or policy denies
 *   3  transient: Vault/Anthropic unreachable, 429/5xx/timeout, lock busy; retried next timer
 *   2  usage or configuration error
 *   1  unexpected internal error (or the credentials file cannot be read)
 *   0  ok (including "nothing to do", "user disabled" and "backing off")
 *
 * Modules (./token/, ./common/; relative imports only):
 *   token/decide.mjs     what one run decides (pure; the table in docs/CONTRACTS.md)
 *   token/run.mjs        the executor of `run`: locks, Vault, the file, OAuth, alerts
 *   token/status.mjs     `status`
 *   token/cli.mjs        options, usage, main
 *   token/core.mjs       exit codes, defaults, secret hygiene, the logger, errors
 *   token/config.mjs     config file, the users.json entry, paths
 *   token/files.mjs      the credentials file (no-follow reads, atomic writes)
 *   token/locks.mjs      Claude Code's mkdir locks
 *   token/vault.mjs      Vault KV v2 + AppRole
 *   token/oauth.mjs      Anthropic's token and profile endpoints
 *   token/overrides.mjs  variables that override the login
 *   token/state.mjs      the state file
 *   token/alerts.mjs     alerts through the notifier socket
 */

export { EXIT, DEFAULT_ALERT_SOCKET, OVERRIDE_VARS, redact, sha256 } from './token/core.mjs';
export { loadConfig } from './token/config.mjs';
export { writeAtomic, isValidOAuth } from './token/files.mjs';
export { detectOverrides } from './token/overrides.mjs';
export { main } from './token/cli.mjs';
import { isMain } from './common/main.mjs';
import { EXIT, errMsg, redact } from './token/core.mjs';
import { main } from './token/cli.mjs';

if (isMain(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(redact(`claude-token-renew: fatal: ${errMsg(e)}`) + '\n');
      process.exitCode = EXIT.ERROR;
    },
  );
}
