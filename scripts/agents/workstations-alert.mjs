#!/usr/bin/env node
// @ts-check
/**
 * workstations-alert: the root-side Slack notifier. Users hand it a message, never the URL.
 *
 * Started by systemd once per connection on workstations-alert.socket (Accept=yes,
 * /run/workstations/alert.sock, root:workstation-users 0660) as
 * workstations-alert@<instance>.service, with the connection as stdin and stdout:
 *   1. the sender is the peer uid in the instance name, which systemd takes from the kernel
 *      (SO_PEERCRED) and the sender cannot choose. systemd 252 names an AF_UNIX instance
 *      `<n>-<peer pid>-<peer uid>` (`<n>-unknown` without credentials); newer versions put a
 *      socket cookie after <n> and may append `_<pidfd id>` to the pid. The uid is always
 *      the last field;
 *   2. the uid must be an `active` user of /etc/workstations/users.json, else refused;
 *   3. reads one message from stdin: one line of JSON `{"text": "..."}`, at most 4 KiB;
 *   4. reads the webhook from $CREDENTIALS_DIRECTORY/slack-webhook (the unit's
 *      LoadCredential=, so only this instance can read it). Absent, empty, "disabled" or
 *      not an http(s) URL = Slack disabled;
 *   5. posts `{"text": "[<user>@<host>] <message>"}` (Slack's &, <, > escaped, so a message
 *      cannot mention @channel or forge links) with a timeout;
 *   6. answers one line on stdout: `ok`, `disabled` or `error <reason>`, logs one line to
 *      stderr (the journal) and exits 0 (ok, disabled) or 1.
 * Never prints or logs the webhook URL. Executes nothing. The protocol is in
 * docs/CONTRACTS.md, "Claude token renewal", "Alerts".
 *
 * No npm dependencies; Node >= 18 (Debian bookworm).
 *
 * Usage: workstations-alert --instance NAME [options]   (see usage() below)
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgv, tryParse, UsageError } from './common/args.mjs';
import { isMain } from './common/main.mjs';
import { readUsersIndex, USERS_FILE, USERS_INDEX_VERSION, UsersFileError } from './common/users.mjs';

const MAX_MESSAGE_BYTES = 4096;
const MAX_TEXT_CHARS = 3000;
const MAX_ANSWER_REASON = 200;

/** @type {Set<string>} */
const SECRETS = new Set();
/** @param {string} text */
function redact(text) {
  let out = text;
  for (const s of SECRETS) if (s && out.includes(s)) out = out.split(s).join('[redacted]');
  return out;
}
/** @param {string} msg */
function log(msg) {
  process.stderr.write(redact(`workstations-alert: ${msg}`).replace(/[\r\n]+/g, ' ') + '\n');
}
/** @param {unknown} e */
function errCode(e) {
  const x = /** @type {any} */ (e);
  const c = x && x.cause && (x.cause.code || x.cause.name);
  return String(c || (x && (x.code || x.name)) || 'error');
}
/** A message excerpt for the journal: one line, bounded. @param {string} s */
function excerpt(s) {
  const one = s.replace(/[\r\n\t]+/g, ' ');
  return JSON.stringify(one.length > 300 ? `${one.slice(0, 300)}…` : one);
}

// ---------------------------------------------------------------------------------------
// The sender

/**
 * The peer of an Accept=yes AF_UNIX instance name. `<n>-<pid>-<uid>` (systemd <= 256),
 * `<n>-<cookie>-<pid>[_<pidfd id>]-<uid>` (later); `...-unknown` = no credentials.
 * @param {string} instance @returns {{pid: number, uid: number} | null}
 */
export function parseInstance(instance) {
  const m = /^\d+(?:-\d+)?-(\d+)(?:_\d+)?-(\d+)$/.exec(instance);
  if (!m) return null;
  const pid = Number(m[1]);
  const uid = Number(m[2]);
  if (!Number.isSafeInteger(pid) || !Number.isSafeInteger(uid) || uid > 0xfffffffe) return null;
  return { pid, uid };
}

/**
 * The active roster user with this uid, or a refusal reason.
 * @param {string} file @param {number} uid @returns {{name: string} | {refused: string}}
 */
function senderOf(file, uid) {
  let doc;
  try {
    doc = readUsersIndex(file);
  } catch (e) {
    if (!(e instanceof UsersFileError)) throw e;
    return { refused: e.kind === 'unreadable' ? `cannot read the users file (${e.code})` : `the users file is not a version ${USERS_INDEX_VERSION} users index` };
  }
  const hits = [...doc.users, ...doc.malformed].filter((u) => u.uid === uid);
  if (hits.length !== 1) return { refused: `uid ${uid} is not a roster user` };
  const u = hits[0];
  if (!doc.users.includes(/** @type {any} */ (u))) return { refused: `uid ${uid} has no valid user name` };
  const entry = /** @type {import('./common/users.mjs').UserEntry} */ (u);
  if (entry.state !== 'active') return { refused: `${entry.name} (uid ${uid}) is not active` };
  return { name: entry.name };
}

// ---------------------------------------------------------------------------------------
// The message

/**
 * Reads one message: up to the first newline or EOF, at most MAX_MESSAGE_BYTES.
 * @param {NodeJS.ReadableStream} input @param {number} timeoutMs
 * @returns {Promise<{ok: true, line: string} | {ok: false, reason: string}>}
 */
function readMessage(input, timeoutMs) {
  return new Promise((resolve) => {
    /** @type {Buffer[]} */
    const chunks = [];
    let size = 0;
    let done = false;
    /** @param {{ok: true, line: string} | {ok: false, reason: string}} r */
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      input.removeListener('error', onError);
      input.pause();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, reason: `no complete message within ${timeoutMs / 1000} s` }), timeoutMs);
    /** @param {Buffer|string} d */
    const onData = (d) => {
      const b = typeof d === 'string' ? Buffer.from(d) : d;
      const nl = b.indexOf(0x0a);
      const take = nl >= 0 ? b.subarray(0, nl) : b;
      size += take.length;
      if (size > MAX_MESSAGE_BYTES) return finish({ ok: false, reason: `message too large (max ${MAX_MESSAGE_BYTES} bytes)` });
      chunks.push(take);
      if (nl >= 0) finish({ ok: true, line: Buffer.concat(chunks).toString('utf8') });
    };
    const onEnd = () => finish({ ok: true, line: Buffer.concat(chunks).toString('utf8') });
    /** @param {unknown} e */
    const onError = (e) => finish({ ok: false, reason: `cannot read the message (${errCode(e)})` });
    input.on('data', onData);
    input.on('end', onEnd);
    input.on('error', onError);
    input.resume();
  });
}

/**
 * @param {string} line @returns {{text: string} | {invalid: string}}
 */
export function parseMessage(line) {
  let j;
  try {
    j = JSON.parse(line);
  } catch {
    return { invalid: 'not a JSON object (expected {"text": "..."})' };
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) return { invalid: 'not a JSON object (expected {"text": "..."})' };
  const extra = Object.keys(j).filter((k) => k !== 'text');
  if (extra.length) return { invalid: `unknown field ${JSON.stringify(extra[0].slice(0, 40))}` };
  if (typeof j.text !== 'string') return { invalid: '"text" must be a string' };
  // Control characters other than newline and tab are dropped.
  // eslint-disable-next-line no-control-regex
  const text = j.text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '').trim();
  if (!text) return { invalid: '"text" is empty' };
  if (text.length > MAX_TEXT_CHARS) return { invalid: `"text" too long (max ${MAX_TEXT_CHARS} characters)` };
  return { text };
}

/** Slack's mrkdwn control characters. @param {string} s */
export function slackEscape(s) {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

// ---------------------------------------------------------------------------------------
// Slack

/** @returns {string} the webhook URL, or '' when Slack is disabled */
function readWebhook() {
  const dir = process.env.CREDENTIALS_DIRECTORY;
  if (!dir) return '';
  let text = '';
  try {
    const fd = fs.openSync(path.join(dir, 'slack-webhook'), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      if (!fs.fstatSync(fd).isFile()) return '';
      const buf = Buffer.alloc(8192);
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      text = buf.subarray(0, n).toString('utf8').trim();
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
  if (!/^https?:\/\/\S+$/.test(text)) return '';
  try {
    const u = new URL(text);
    SECRETS.add(text);
    if (u.pathname.length > 1) SECRETS.add(u.pathname);
    if (u.search.length > 1) SECRETS.add(u.search);
  } catch {
    return '';
  }
  return text;
}

/**
 * @param {string} url @param {string} text @param {number} timeoutMs
 * @returns {Promise<{ok: true} | {ok: false, reason: string}>}
 */
async function postSlack(url, text, timeoutMs) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ text }),
      signal: ac.signal,
      redirect: 'error',
    });
    await res.arrayBuffer().catch(() => null);
    if (res.status >= 200 && res.status < 300) return { ok: true };
    return { ok: false, reason: `slack answered ${res.status}` };
  } catch (e) {
    if (ac.signal.aborted) return { ok: false, reason: `slack timed out after ${timeoutMs / 1000} s` };
    return { ok: false, reason: `slack unreachable (${errCode(e)})` };
  } finally {
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------------------
// CLI

function usage() {
  return `usage: workstations-alert --instance NAME [options]
  Reads one alert ({"text": "..."}, one line, <= ${MAX_MESSAGE_BYTES} bytes) on stdin, posts it to Slack
  prefixed with the sender's user name and the host, answers "ok", "disabled" or
  "error <reason>" on stdout. Run by workstations-alert@.service (Accept=yes socket).
options:
  --instance NAME        the Accept=yes instance name (%i): <n>-<peer pid>-<peer uid>
  --users-file FILE      roster index (default /etc/workstations/users.json)
  --host-label NAME      host name used in the prefix (default: the hostname)
  --slack-timeout SEC    Slack request timeout (default 10)
  --read-timeout SEC     time allowed to send the message (default 5)
The webhook is $CREDENTIALS_DIRECTORY/slack-webhook (absent/empty/"disabled" = Slack off).
exit: 0 ok or disabled, 1 refused or failed, 2 usage`;
}

/** @param {string[]} argv */
function parseArgs(argv) {
  const { opts, positional } = parseArgv(argv, { valued: ['instance', 'users-file', 'host-label', 'slack-timeout', 'read-timeout'], flags: ['help'], aliases: { '-h': 'help' } });
  if (positional.length) throw new UsageError(`unexpected argument ${JSON.stringify(positional[0].slice(0, 40))}`);
  for (const k of ['slack-timeout', 'read-timeout']) {
    if (opts[k] !== undefined && !(Number(opts[k]) > 0 && Number(opts[k]) <= 600)) throw new UsageError(`--${k} must be seconds (0 < s <= 600)`);
  }
  return opts;
}

/**
 * Handles one connection: stdin -> Slack -> one answer line on stdout.
 * @param {string[]} argv @returns {Promise<{code: number, answer: string}>}
 */
export async function handle(argv) {
  const args = tryParse(parseArgs, argv);
  if (args.refused !== undefined) {
    log(`usage: ${args.refused}`);
    return { code: 2, answer: 'error usage' };
  }
  const opts = args.opts;
  if (opts.help) {
    process.stderr.write(`${usage()}\n`);
    return { code: 0, answer: '' };
  }
  const instance = String(opts.instance ?? '');
  const host = String(opts['host-label'] || os.hostname());
  const usersFile = String(opts['users-file'] || USERS_FILE);
  const slackTimeoutMs = Number(opts['slack-timeout'] ?? 10) * 1000;
  const readTimeoutMs = Number(opts['read-timeout'] ?? 5) * 1000;

  // Read the message first: the sender always gets an answer, never a reset connection.
  const msg = await readMessage(process.stdin, readTimeoutMs);
  const peer = parseInstance(instance);
  if (!peer) {
    log(`refused: no peer credentials in instance ${JSON.stringify(instance.slice(0, 80))}`);
    return { code: 1, answer: 'error refused: unknown sender' };
  }
  const who = `uid ${peer.uid}, pid ${peer.pid}`;
  const sender = senderOf(usersFile, peer.uid);
  if ('refused' in sender) {
    log(`refused (${who}): ${sender.refused}`);
    return { code: 1, answer: `error refused: ${sender.refused}` };
  }
  const from = `${sender.name} (${who})`;
  if (!msg.ok) {
    log(`refused from ${from}: ${msg.reason}`);
    return { code: 1, answer: `error ${msg.reason}` };
  }
  const parsed = parseMessage(msg.line);
  if ('invalid' in parsed) {
    log(`refused from ${from}: ${parsed.invalid}`);
    return { code: 1, answer: `error invalid message: ${parsed.invalid}` };
  }
  const url = readWebhook();
  if (!url) {
    log(`Slack is disabled; not sent from ${from}: ${excerpt(parsed.text)}`);
    return { code: 0, answer: 'disabled' };
  }
  const r = await postSlack(url, `[${sender.name}@${slackEscape(host)}] ${slackEscape(parsed.text)}`, slackTimeoutMs);
  if (r.ok) {
    log(`sent from ${from}: ${excerpt(parsed.text)}`);
    return { code: 0, answer: 'ok' };
  }
  log(`not sent from ${from}: ${r.reason}: ${excerpt(parsed.text)}`);
  return { code: 1, answer: `error ${r.reason}` };
}

if (isMain(import.meta.url)) {
  // A last guard: the unit also has RuntimeMaxSec=.
  const guard = setTimeout(() => {
    log('internal timeout');
    process.exit(1);
  }, 60_000);
  guard.unref();
  // The sender may be gone before the answer: never crash on a closed connection.
  process.stdout.on('error', () => {});
  process.stdin.on('error', () => {});
  handle(process.argv.slice(2)).then(
    ({ code, answer }) => {
      process.exitCode = code;
      const line = redact(answer).replace(/[\r\n]+/g, ' ').slice(0, MAX_ANSWER_REASON);
      if (line) process.stdout.write(`${line}\n`, () => process.stdin.destroy());
      else process.stdin.destroy();
    },
    (e) => {
      log(`fatal: ${errCode(e)}`);
      process.exitCode = 1;
      process.stdout.write('error internal\n', () => process.stdin.destroy());
    },
  );
}
