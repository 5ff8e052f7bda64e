#!/usr/bin/env node
// @ts-check
/**
 * workstations-heal: puts back what drifted on the host between deploys, as the team's hourly
 * reconcile did (issue 21 item 7; README "Drift").
 *
 * Every step a deploy runs through the host library and converges with (an account, its
 * units, its limits, the host's files and units, earlyoom's drop-in) leaves a record in
 * /var/lib/workstations/deployed/<verb>@<user|host> (the library's ws_record, root 0600): the
 * command that applies it again, as the deploy ran it, and the state of every file and unit it
 * manages (a file's sha256, mode and owner; a file it removed; a unit it enabled). A cut, a
 * removal or a purge drops the records it ends, and a user who is not active has no account
 * record: nothing here ever repeats a cut or does what the last deploy did not.
 *
 *   workstations-heal --check   what differs from the records, one line each; changes nothing.
 *                               Exit 0: no drift, 1: drift, 2: usage or an unreadable record.
 *   workstations-heal           the same check, then each drifted step is run again exactly as
 *                               recorded (the library converges it under the host lock and
 *                               records it anew); each thing that changed is logged and posted
 *                               once to Slack (root's copy of the renewal alerts' webhook).
 *                               Exit 0: healed or nothing to heal, 1: a step failed.
 *
 * Run as root by workstations-heal.timer (hourly). Root reads only root's own paths here (the
 * records name files the library manages outside the homes, /etc and /usr/local), never
 * follows a symlink in them, and runs only a host-library version under its root-owned
 * directory, with its own fixed environment. No npm dependencies; Node >= 18.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isMain } from './common/main.mjs';

const DEPLOYED_DIR = '/var/lib/workstations/deployed';
const HOST_LIB_DIR = '/usr/local/lib/workstations/lib';
const SLACK_WEBHOOK_FILE = '/etc/workstations/claude-token-renew.slack';
const SYSTEMCTL = '/usr/bin/systemctl';
const ROOT_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', HOME: '/root' };

/**
 * @typedef {{key: string, argv: string[], files: {path: string, want: string}[], absent: string[], units: string[]}} Record
 * @typedef {{key: string, what: string}} Drift
 */

/** Parses one record's text. @param {string} key @param {string} text @returns {Record} */
export function parseRecord(key, text) {
  /** @type {Record} */
  const r = { key, argv: [], files: [], absent: [], units: [] };
  for (const line of text.split('\n')) {
    const [kind, a, b] = line.split('\t');
    if (kind === 'arg' && a !== undefined) r.argv.push(Buffer.from(a, 'base64').toString('utf8'));
    else if (kind === 'file' && a && b) r.files.push({ path: a, want: b });
    else if (kind === 'absent' && a) r.absent.push(a);
    else if (kind === 'unit' && a) r.units.push(a);
  }
  return r;
}

/** Every record, by key (sorted). @param {string} dir @returns {Record[]} */
export function readRecords(dir = DEPLOYED_DIR) {
  let names;
  try {
    names = fs.readdirSync(dir).filter((n) => !n.startsWith('.')).sort();
  } catch (e) {
    if (/** @type {NodeJS.ErrnoException} */ (e).code === 'ENOENT') return [];
    throw e;
  }
  return names.map((n) => parseRecord(n, fs.readFileSync(path.join(dir, n), 'utf8')));
}

/** `sha256 mode owner:group` of a regular file as ws_record writes it, or why it is not one. @param {string} p */
function fileState(p) {
  let st;
  try {
    st = fs.lstatSync(p);
  } catch {
    return 'missing';
  }
  if (!st.isFile()) return st.isSymbolicLink() ? 'a symlink' : 'not a regular file';
  const sum = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
  return `${sum} ${(st.mode & 0o7777).toString(8)} ${nameOf('passwd', st.uid)}:${nameOf('group', st.gid)}`;
}

/** @type {Map<string, string>} */
const names = new Map();
/** The name of a uid or gid (getent), as stat %U / %G print it. @param {'passwd'|'group'} db @param {number} id */
function nameOf(db, id) {
  const k = `${db}:${id}`;
  if (!names.has(k)) {
    let n = String(id);
    try {
      n = execFileSync('/usr/bin/getent', [db, String(id)], { encoding: 'utf8', env: ROOT_ENV }).split(':')[0] || n;
    } catch {
      /* no name: stat prints the number too */
    }
    names.set(k, n);
  }
  return /** @type {string} */ (names.get(k));
}

/** @param {string} verb @param {string} unit */
function systemctl(verb, unit) {
  return spawnSync(SYSTEMCTL, [verb, unit], { encoding: 'utf8', env: ROOT_ENV }).stdout.trim();
}

/** What of one record differs now. @param {Record} r @returns {Drift[]} */
export function checkRecord(r) {
  /** @type {Drift[]} */
  const out = [];
  const drift = (/** @type {string} */ what) => out.push({ key: r.key, what });
  for (const f of r.files) {
    const now = fileState(f.path);
    if (now === f.want) continue;
    const [sum, mode, owner] = f.want.split(' ');
    const [nsum, nmode, nowner] = now.split(' ');
    if (!nmode) drift(`${f.path}: ${now}`);
    else if (nsum !== sum) drift(`${f.path}: edited`);
    else drift(`${f.path}: mode ${nmode} ${nowner}, not ${mode} ${owner}`);
  }
  for (const p of r.absent) {
    let there = true;
    try {
      fs.lstatSync(p);
    } catch {
      there = false;
    }
    if (there) drift(`${p}: present (the deploy removed it)`);
  }
  for (const u of r.units) {
    const enabled = systemctl('is-enabled', u);
    if (enabled !== 'enabled') drift(`${u}: ${enabled || 'not found'}, not enabled`);
    else if (/\.(timer|socket)$/.test(u) && systemctl('is-active', u) !== 'active') drift(`${u}: not running`);
  }
  return out;
}

/**
 * The recorded command, if it is safe for root to run: a host-library version, a regular file
 * owned by root and writable by nobody else, in the root-owned library directory.
 * @param {Record} r @returns {string|null} why not, or null
 */
export function replayProblem(r) {
  const prog = r.argv[0];
  if (!prog || path.dirname(prog) !== HOST_LIB_DIR || !/^ws-[0-9a-f]{16}\.sh$/.test(path.basename(prog))) return `its command is not a host library version (${prog || 'none'})`;
  for (const p of [HOST_LIB_DIR, prog]) {
    let st;
    try {
      st = fs.lstatSync(p);
    } catch {
      return `${p} is missing`;
    }
    if (st.isSymbolicLink() || st.uid !== 0 || st.mode & 0o022) return `${p} is not root's own (owner ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`;
  }
  return null;
}

/**
 * Runs one record's step again. A record of units only (the host's units, `units@host`) has no
 * command: each of its units is enabled again, and a timer or socket started, as the deploy does.
 * @param {Record} r @returns {{ok: boolean, changed: string[], error: string}}
 */
function replay(r) {
  if (!r.argv.length) {
    /** @type {string[]} */
    const changed = [];
    const errors = [];
    for (const u of r.units) {
      if (systemctl('is-enabled', u) !== 'enabled') {
        const e = spawnSync(SYSTEMCTL, ['enable', u], { encoding: 'utf8', env: ROOT_ENV });
        if (e.status === 0) changed.push(`enabled ${u}`);
        else errors.push(`enable ${u}: ${(e.stderr || '').trim()}`);
      }
      if (/\.(timer|socket)$/.test(u) && systemctl('is-active', u) !== 'active') {
        const e = spawnSync(SYSTEMCTL, ['start', u], { encoding: 'utf8', env: ROOT_ENV });
        if (e.status === 0) changed.push(`started ${u}`);
        else errors.push(`start ${u}: ${(e.stderr || '').trim()}`);
      }
    }
    return { ok: !errors.length, changed, error: errors.join('; ') };
  }
  const problem = replayProblem(r);
  if (problem) return { ok: false, changed: [], error: problem };
  const res = spawnSync('/bin/bash', r.argv, { encoding: 'utf8', env: ROOT_ENV, timeout: 15 * 60_000 });
  const changed = (res.stdout || '').split('\n').filter((l) => l.startsWith('changed: ')).map((l) => l.slice('changed: '.length));
  const error = res.status === 0 ? '' : (res.stderr || res.error?.message || `exit ${res.status ?? res.signal}`).trim().split('\n').slice(-2).join(' ');
  return { ok: res.status === 0, changed, error };
}

/** Posts one message to Slack with root's copy of the webhook; false when there is none or it fails. @param {string} text */
async function postSlack(text) {
  let url = '';
  try {
    url = fs.readFileSync(SLACK_WEBHOOK_FILE, 'utf8').trim();
  } catch {
    return false;
  }
  if (!/^https?:\/\//.test(url)) return false;
  try {
    const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ text }), signal: AbortSignal.timeout(15_000) });
    return res.ok;
  } catch {
    return false;
  }
}

const host = () => fs.readFileSync('/proc/sys/kernel/hostname', 'utf8').trim();

/** @param {string[]} argv */
export async function main(argv) {
  const check = argv.includes('--check');
  if (argv.some((a) => a !== '--check')) {
    console.error('usage: workstations-heal [--check]');
    return 2;
  }
  let records;
  try {
    records = readRecords();
  } catch (e) {
    console.error(`workstations-heal: cannot read ${DEPLOYED_DIR}: ${/** @type {Error} */ (e).message}`);
    return 2;
  }
  const drifted = records.map((r) => ({ r, drift: checkRecord(r) })).filter((x) => x.drift.length);
  for (const { drift } of drifted) for (const d of drift) console.log(`drift: ${d.key}: ${d.what}`);
  if (check) {
    if (!drifted.length) console.log(`no drift (${records.length} records)`);
    return drifted.length ? 1 : 0;
  }
  let failed = 0;
  /** @type {string[]} */
  const healed = [];
  for (const { r } of drifted) {
    const res = replay(r);
    for (const c of res.changed) {
      console.log(`healed: ${r.key}: ${c}`);
      healed.push(`${r.key}: ${c}`);
    }
    if (!res.ok) {
      failed++;
      console.log(`cannot heal ${r.key}: ${res.error}`);
      healed.push(`${r.key}: NOT healed (${res.error})`);
    }
  }
  if (!drifted.length) console.log(`no drift (${records.length} records)`);
  if (healed.length) {
    const text = `:adhesive_bandage: workstations-heal on ${host()} put back what drifted since the last deploy:\n${healed.map((h) => `• ${h}`).join('\n')}`;
    if (!(await postSlack(text.slice(0, 3000)))) console.log('(not posted to Slack: no webhook configured on this host, or Slack did not take it)');
  }
  return failed ? 1 : 0;
}

if (isMain(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
