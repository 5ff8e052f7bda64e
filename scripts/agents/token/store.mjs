// @ts-check
/**
 * claude-token-renew store-setup-token: the one command a user runs to store a new setup token
 * (README "Claude logins"). Run as the user, after `claude setup-token`; the token is read from
 * stdin (hidden when stdin is a terminal), never from argv. It must look like a setup token and
 * pass the real check (a rejected one is not stored), then it is merged into the user's Vault
 * secret (check-and-set, every other field kept) and delivered to ~/.claude-oauth-token at once.
 */
import os from 'node:os';
import { EXIT, UsageError, errMsg, log, out, sha256 } from './core.mjs';
import { checkOwner, loadConfig, loadUser, resolvePaths } from './config.mjs';
import { SETUP_TOKEN_RE, checkSetupToken, deliverToken, storeVaultSetup } from './setup.mjs';
import { loadState, saveState } from './state.mjs';
import { Vault } from './vault.mjs';

/** Reads one line from stdin; on a terminal without echo. @returns {Promise<string>} */
export function readSecretLine() {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let buf = '';
    const tty = stdin.isTTY;
    if (tty) {
      process.stderr.write('Paste the token `claude setup-token` printed (input hidden), then Enter: ');
      stdin.setRawMode(true);
    }
    stdin.setEncoding('utf8');
    /** @param {string|null} err */
    const done = (err) => {
      stdin.removeListener('data', onData);
      stdin.removeListener('end', onEnd);
      if (tty) {
        stdin.setRawMode(false);
        process.stderr.write('\n');
      }
      stdin.pause();
      if (err) reject(new UsageError(err));
      else resolve(buf.trim());
    };
    /** @param {string} chunk */
    const onData = (chunk) => {
      for (const ch of chunk) {
        if (ch === '\u0003' || ch === '\u0004') return done('cancelled; nothing stored');
        if (ch === '\r' || ch === '\n') {
          if (tty) return done(null);
          continue;
        }
        if (ch === '\u007f') buf = buf.slice(0, -1);
        else buf += ch;
        if (buf.length > 8192) return done('that is not a setup token (too long); nothing stored');
      }
    };
    const onEnd = () => done(null);
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.resume();
  });
}

/** @param {string|boolean|undefined} v @param {number} now @param {number} lifetimeDays @returns {number} */
export function expiryOf(v, now, lifetimeDays) {
  if (v === undefined || v === false) return now + lifetimeDays * 86_400_000;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(v));
  const t = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  if (!Number.isFinite(t) || t <= now) throw new UsageError(`--expires ${String(v)}: give the token's expiry as YYYY-MM-DD, in the future`);
  return t;
}

/** @param {Record<string, string|boolean>} opts @returns {Promise<number>} */
export async function cmdStore(opts) {
  const cfg = loadConfig(String(opts.config));
  const user = String(opts.user || os.userInfo().username);
  const entry = loadUser(String(opts['users-file'] || cfg.usersFile), user);
  if (!entry || (entry.state ?? 'active') !== 'active') throw new UsageError(`${user} is not an active workstation user here; nothing stored`);
  const paths = resolvePaths(opts, cfg, user);
  checkOwner(paths.home);
  const now = Date.now();
  const expiresAt = expiryOf(opts.expires, now, cfg.setupTokenLifetimeDays);
  const token = await readSecretLine();
  if (!SETUP_TOKEN_RE.test(token)) throw new UsageError('that is not a setup token (sk-ant-oat01-…, as `claude setup-token` prints it); nothing stored');
  const c = await checkSetupToken(cfg, token);
  if (!c.ok && c.kind === 'rejected') {
    log('error', `${c.detail}; nothing stored. Run \`claude setup-token\` again (as ${entry.email ?? user}).`);
    return EXIT.LOGIN_REQUIRED;
  }
  if (!c.ok) log('warn', `${c.detail}: stored without a check; the agent checks it on its next run`);
  const vault = new Vault(cfg, user, paths);
  let version;
  try {
    version = await storeVaultSetup(vault, token, expiresAt);
  } catch (e) {
    log('error', `cannot store it in Vault: ${errMsg(e)}; nothing stored`);
    return EXIT.TRANSIENT;
  }
  await deliverToken(paths.tokenFile, token);
  const state = await loadState(paths);
  state.setup = { hash: sha256(token), ok: c.ok ? true : null, detail: '', checkedAt: new Date(now).toISOString(), expiresAt };
  await saveState(paths, state).catch((e) => log('warn', `cannot save state: ${errMsg(e)}`));
  const mode = entry.claudeLogin === 'setup-token' ? '' : ' Note: your roster entry is not in setup-token mode yet (claudeLogin), so the agent will not keep it delivered.';
  out(`stored (Vault version ${version}, expires ${new Date(expiresAt).toISOString().slice(0, 10)}) and delivered to ${paths.tokenFile}. Claude sessions you start from now on use it; running ones keep their login until restarted.${mode}`);
  return EXIT.OK;
}
