/**
 * The operator tools' way onto the host (takeover plan, drift report): the stack's host, port,
 * user and host key (Pulumi.devvm.yaml), and one bash script run there as root over ssh with
 * the host key always verified (BatchMode: no prompt, no agent forwarding).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { readStackConfig } from "./access-side";

/** `roster`, `host`, `port`, `user`, `host-key` from the stack's config (what is not set: the defaults). */
export function stackDefaults(): Record<string, string> {
  try {
    const cfg = readStackConfig((f) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8") : undefined));
    const v = (k: string) => (typeof cfg.values[`workstations:${k}`] === "string" ? (cfg.values[`workstations:${k}`] as string) : "");
    return { roster: cfg.roster, host: v("host"), port: v("sshPort") || "22", user: v("sshUser") || "root", "host-key": v("hostKey") };
  } catch {
    return { roster: "roster.yaml", port: "22", user: "root" };
  }
}

export interface HostTarget {
  host: string;
  port: string;
  user: string;
  /** a private key file (else ssh's own) */
  identity?: string;
  /** the host's public key, `TYPE KEY` */
  hostKey: string;
}

/**
 * Runs `script` (bash, on stdin) on the host with `args`; its stdout and exit status. Throws
 * with ssh's own words when ssh itself fails (exit 255) or, unless `anyExit`, the script fails.
 */
export function runOnHost(o: HostTarget, script: string, args: string[] = [], anyExit = false): string {
  return runOnHostStatus(o, script, args, anyExit).stdout;
}

export function runOnHostStatus(o: HostTarget, script: string, args: string[] = [], anyExit = false): { stdout: string; status: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-host-ssh-"));
  try {
    const known = path.join(dir, "known_hosts");
    fs.writeFileSync(known, `${o.port === "22" ? o.host : `[${o.host}]:${o.port}`} ${o.hostKey.trim()}\n`);
    const sshArgs = ["-o", "BatchMode=yes", "-o", `UserKnownHostsFile=${known}`, "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=15", "-p", o.port];
    if (o.identity) sshArgs.push("-i", o.identity, "-o", "IdentitiesOnly=yes");
    const r = spawnSync("ssh", [...sshArgs, `${o.user}@${o.host}`, "bash", "-s", "--", ...args], {
      input: script,
      encoding: "utf8",
      timeout: 120_000,
      maxBuffer: 16 << 20,
    });
    if (r.status === 255 || r.status === null || (!anyExit && r.status !== 0))
      throw new Error(
        `reading ${o.user}@${o.host}:${o.port} failed (exit ${r.status ?? r.signal}): ${(r.stderr || String(r.error ?? "")).trim().split("\n").slice(-2).join(" ")}`,
      );
    return { stdout: r.stdout, status: r.status };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
