/**
 * `npm run drift [-- --host H --port N --user U --identity FILE --host-key "TYPE KEY"] [--ci]`:
 * what drifted on the host since the last deploy, as `workstations-heal --check` sees it there
 * (README "Drift"), read over ssh with the stack's host and host key (tools/host-ssh.ts).
 * Read-only. CI's preview runs it after `pulumi preview` (`--ci`: the key comes from
 * DEVVM_SSH_PRIVATE_KEY, written to a private temporary file; a host that cannot be read is
 * said in one line, and never fails the preview). Exit 0: no drift (or --ci), 1: drift, 2:
 * usage or an unreachable host.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { escapeControls } from "../components/roster/schema";
import { runOnHostStatus, stackDefaults } from "./host-ssh";

const USAGE = 'usage: npm run drift -- [--host H] [--port N] [--user U] [--identity FILE] [--host-key "TYPE KEY"] [--ci]';

/** Run on the host: the check, or one line saying why there is none. */
export const DRIFT_SCRIPT = `set -uo pipefail
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
if [ ! -x /usr/local/bin/workstations-heal ]; then echo "no drift check on this host yet (the first deploy of this version installs workstations-heal)"; exit 0; fi
exec /usr/local/bin/workstations-heal --check
`;

function main(argv: string[]): number {
  const o = stackDefaults();
  let ci = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--ci") ci = true;
    else {
      const m = /^--(host|port|user|identity|host-key)$/.exec(argv[i]);
      if (!m || argv[i + 1] === undefined) return (console.error(USAGE), 2);
      o[m[1]] = argv[++i];
    }
  }
  const say = (line: string) => console.log(escapeControls(line));
  if (!o.host || !o["host-key"] || !/^[0-9]{1,5}$/.test(o.port)) {
    say("drift: not checked (workstations:host and workstations:hostKey, or --host and --host-key, are needed)");
    return ci ? 0 : 2;
  }
  let dir: string | undefined;
  try {
    if (ci && !o.identity) {
      const key = process.env.DEVVM_SSH_PRIVATE_KEY;
      if (!key) return (say("drift: not checked (no DEVVM_SSH_PRIVATE_KEY in this pipeline)"), 0);
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-drift-"));
      o.identity = path.join(dir, "key");
      fs.writeFileSync(o.identity, key.endsWith("\n") ? key : `${key}\n`, { mode: 0o600 });
    }
    const r = runOnHostStatus({ host: o.host, port: o.port, user: o.user, identity: o.identity, hostKey: o["host-key"] }, DRIFT_SCRIPT, [], true);
    say(`drift on ${o.host} since the last deploy (workstations-heal --check; the hourly heal puts it back):`);
    for (const l of r.stdout.trim().split("\n")) say(`  ${l}`);
    return ci ? 0 : r.status === 1 ? 1 : r.status === 0 ? 0 : 2;
  } catch (e) {
    say(`drift: not checked: ${(e as Error).message}`);
    return ci ? 0 : 2;
  } finally {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
