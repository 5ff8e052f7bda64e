#!/usr/bin/env node
// @ts-check
/**
 * workstations-status: each user's current use against the caps the program set (issue 23),
 * and the earlyoom backstop.
 *
 * For every user of /etc/workstations/users.json (or only the names given), one systemd query
 * of the user's slice (`user-<uid>.slice`, whose drop-in the limits verb writes): memory in use
 * and its maximum, swap, tasks and their maximum, the CPU weight, and how many times the
 * kernel killed inside the slice for memory (`memory.events`, cgroup v2). A user with no
 * process has no active slice: their use reads 0 and their caps still show (systemd loads
 * the drop-in without the slice running).
 *
 * Reads only; runs nothing but /usr/bin/systemctl show. Any user may run it (the index and the
 * cgroup files are world-readable).
 *
 * Usage: workstations-status [--json] [USER...]
 * Exit: 0, 1 when the index cannot be read, 2 on a usage error (a name not in the index).
 *
 * No npm dependencies; Node >= 18.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { parseArgv, UsageError } from './common/args.mjs';
import { isMain } from './common/main.mjs';
import { readUsersIndex, UsersFileError } from './common/users.mjs';

const SYSTEMCTL = '/usr/bin/systemctl';
const CGROUP_ROOT = '/sys/fs/cgroup';
const PROPS = ['Id', 'ActiveState', 'MemoryCurrent', 'MemoryMax', 'MemorySwapCurrent', 'MemorySwapMax', 'TasksCurrent', 'TasksMax', 'CPUWeight'];

/**
 * @typedef {{user: string, uid: number, state: string, active: boolean, memory: number|null, memoryMax: number|null,
 *   swap: number|null, swapMax: number|null, tasks: number|null, tasksMax: number|null, cpuWeight: number|null,
 *   oomKills: number|null}} Row
 * @typedef {{state: 'active'|'inactive'|'not installed', args: string}} EarlyoomStatus
 */

/** systemd's number, or null for "infinity", "[not set]" and the 2^64-1 of "no value". @param {string|undefined} v */
export function num(v) {
  if (v === undefined || !/^\d+$/.test(v)) return null;
  const n = Number(v);
  return n >= 2 ** 63 ? null : n;
}

/**
 * `systemctl show -p … UNIT…`: blocks separated by a blank line, in the order of the units.
 * @param {string} text @returns {Record<string, string>[]}
 */
export function parseShow(text) {
  return text
    .split(/\n\s*\n/)
    .filter((b) => b.trim())
    .map((b) => Object.fromEntries(b.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])));
}

/** The kernel's OOM kills inside a slice (cgroup v2 `memory.events`), null when unknown. @param {string} dir */
function oomKills(dir) {
  try {
    const m = /^oom_kill (\d+)$/m.exec(fs.readFileSync(`${dir}/memory.events`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** @param {{name: string, uid: number, state?: string}[]} users @returns {Row[]} */
export function collect(users) {
  if (!users.length) return [];
  const out = execFileSync(SYSTEMCTL, ['show', '-p', PROPS.join(','), '--', ...users.map((u) => `user-${u.uid}.slice`)], {
    encoding: 'utf8',
    env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
  });
  const blocks = parseShow(out);
  return users.map((u) => {
    const b = blocks.find((x) => x.Id === `user-${u.uid}.slice`) ?? {};
    const active = b.ActiveState === 'active';
    const v2 = fs.existsSync(`${CGROUP_ROOT}/cgroup.controllers`);
    return {
      user: u.name,
      uid: u.uid,
      state: u.state ?? 'active',
      active,
      memory: active ? num(b.MemoryCurrent) : 0,
      memoryMax: num(b.MemoryMax),
      swap: active ? num(b.MemorySwapCurrent) : 0,
      swapMax: num(b.MemorySwapMax),
      tasks: active ? num(b.TasksCurrent) : 0,
      tasksMax: num(b.TasksMax),
      cpuWeight: num(b.CPUWeight),
      oomKills: active && v2 ? oomKills(`${CGROUP_ROOT}/user.slice/user-${u.uid}.slice`) : active ? null : 0,
    };
  });
}

/** @returns {EarlyoomStatus} */
export function earlyoom() {
  let out = '';
  try {
    out = execFileSync(SYSTEMCTL, ['show', '-p', 'LoadState,ActiveState,ExecStart', '--', 'earlyoom.service'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' } });
  } catch {
    return { state: 'not installed', args: '' };
  }
  const b = parseShow(out)[0] ?? {};
  if (b.LoadState !== 'loaded') return { state: 'not installed', args: '' };
  const argv = /argv\[\]=(.*?) ;/.exec(b.ExecStart ?? '')?.[1] ?? '';
  // systemctl shows the unit file's words: a `$` written `$$` there is one `$` in earlyoom's argv
  return { state: b.ActiveState === 'active' ? 'active' : 'inactive', args: argv.replace(/^\S+\s*/, '').replace(/\$\$/g, '$') };
}

/** @param {number|null} n */
const bytes = (n) => (n === null ? 'none' : n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)}G` : `${Math.round(n / 2 ** 20)}M`);
/** @param {number|null} used @param {number|null} max @param {(n: number|null) => string} f */
const ofMax = (used, max, f) => `${used === null ? '?' : f(used)}/${max === null ? 'none' : f(max)}${used !== null && max ? ` ${Math.round((100 * used) / max)}%` : ''}`;

/** The table a person reads. @param {Row[]} rows @param {EarlyoomStatus} eo @returns {string} */
export function render(rows, eo) {
  const head = ['USER', 'UID', 'STATE', 'MEMORY', 'SWAP', 'TASKS', 'CPU', 'OOM-KILLS'];
  const lines = rows.map((r) => [
    r.user,
    String(r.uid),
    r.active ? r.state : `${r.state} (idle)`,
    ofMax(r.memory, r.memoryMax, bytes),
    ofMax(r.swap, r.swapMax, bytes),
    ofMax(r.tasks, r.tasksMax, String),
    r.cpuWeight === null ? 'default' : String(r.cpuWeight),
    r.oomKills === null ? '?' : String(r.oomKills),
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (/** @type {string[]} */ l) => l.map((c, i) => c.padEnd(width[i])).join('  ').trimEnd();
  return [fmt(head), ...lines.map(fmt), `earlyoom: ${eo.state}${eo.args ? ` (${eo.args})` : ''}`].join('\n') + '\n';
}

/** @param {string[]} argv @returns {number} */
export function main(argv) {
  let opts;
  try {
    opts = parseArgv(argv, { valued: [], flags: ['json', 'help'], aliases: { '-h': 'help' } });
  } catch (e) {
    process.stderr.write(`workstations-status: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  if (opts.opts.help) {
    process.stdout.write('usage: workstations-status [--json] [USER...]\n');
    return 0;
  }
  let index;
  try {
    index = readUsersIndex();
  } catch (e) {
    process.stderr.write(`workstations-status: ${e instanceof UsersFileError ? e.message : String(e)}\n`);
    return 1;
  }
  const known = index.users.filter((u) => u.state !== 'offboarded');
  for (const n of opts.positional)
    if (!known.some((u) => u.name === n)) {
      process.stderr.write(`workstations-status: ${n} is not a user of this host (${known.map((u) => u.name).join(', ')})\n`);
      return 2;
    }
  const users = opts.positional.length ? known.filter((u) => opts.positional.includes(u.name)) : known;
  const rows = collect(users);
  const eo = earlyoom();
  process.stdout.write(opts.opts.json ? `${JSON.stringify({ users: rows, earlyoom: eo }, null, 2)}\n` : render(rows, eo));
  return 0;
}

if (isMain(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) process.exitCode = 2;
    else process.exitCode = 1;
    process.stderr.write(`workstations-status: ${e instanceof Error ? e.message : String(e)}\n`);
  }
}
