// Background dev services for `npm run sandbox`:
//
//   node --require ts-node/register/transpile-only dev/services-cli.ts start|stop|status
//
// start  starts the Vault-API dev server and Forgejo (fresh each time) in the background and
//        prints JSON with their addresses. Tokens and passwords go to 0600 files in the state
//        dir (${WORKSTATIONS_CACHE:-~/.cache/workstations}/services), never to stdout.
// stop   stops both and removes the state file.
// status prints the same JSON with `running` flags; exit code 1 if not everything runs.

import * as fs from "node:fs";
import * as path from "node:path";
import { cacheDir, pidAlive, startForgejo, startVault, stopPid } from "./services";

export interface ServicesState {
  version: 1;
  stateDir: string;
  vault: { kind: string; addr: string; pid: number; log: string; rootTokenFile: string };
  forgejo: {
    kind: string;
    version: string;
    url: string;
    pid: number;
    log: string;
    adminUser: string;
    adminPasswordFile: string;
    adminTokenFile: string;
    repo: string;
  };
}

export function servicesStateDir(): string {
  return path.join(cacheDir(), "services");
}

export function stateFile(): string {
  return path.join(servicesStateDir(), "state.json");
}

export function readState(): ServicesState | null {
  try {
    return JSON.parse(fs.readFileSync(stateFile(), "utf8")) as ServicesState;
  } catch {
    return null;
  }
}

function writeSecret(file: string, value: string): void {
  fs.writeFileSync(file, value + "\n", { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

async function status(st: ServicesState | null): Promise<{ ok: boolean; out: unknown }> {
  if (!st) return { ok: false, out: { running: false, stateFile: stateFile() } };
  const vaultUp = pidAlive(st.vault.pid) && (await healthy(`${st.vault.addr}/v1/sys/health`));
  const forgejoUp = pidAlive(st.forgejo.pid) && (await healthy(`${st.forgejo.url}api/healthz`));
  return {
    ok: vaultUp && forgejoUp,
    out: { ...st, vault: { ...st.vault, running: vaultUp }, forgejo: { ...st.forgejo, running: forgejoUp } },
  };
}

async function stop(): Promise<void> {
  const st = readState();
  if (st) {
    await Promise.all([stopPid(st.vault.pid), stopPid(st.forgejo.pid)]);
    fs.rmSync(stateFile(), { force: true });
  }
}

async function start(): Promise<void> {
  const existing = await status(readState());
  if (existing.ok) {
    process.stdout.write(JSON.stringify(existing.out, null, 2) + "\n");
    return;
  }
  await stop();
  const dir = servicesStateDir();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const vault = await startVault({ dir: path.join(dir, "vault"), detached: true });
  let forgejo;
  try {
    forgejo = await startForgejo({ dir: path.join(dir, "forgejo"), detached: true });
  } catch (e) {
    await vault.stop();
    throw e;
  }
  const rootTokenFile = path.join(dir, "vault", "root-token");
  const adminPasswordFile = path.join(dir, "forgejo", "admin-password");
  const adminTokenFile = path.join(dir, "forgejo", "admin-token");
  writeSecret(rootTokenFile, vault.rootToken);
  writeSecret(adminPasswordFile, forgejo.adminPassword);
  writeSecret(adminTokenFile, forgejo.adminToken);
  const st: ServicesState = {
    version: 1,
    stateDir: dir,
    vault: { kind: vault.kind, addr: vault.addr, pid: vault.pid, log: vault.log, rootTokenFile },
    forgejo: {
      kind: forgejo.kind,
      version: forgejo.version,
      url: forgejo.url,
      pid: forgejo.pid,
      log: forgejo.log,
      adminUser: forgejo.adminUser,
      adminPasswordFile,
      adminTokenFile,
      repo: `${forgejo.repo.owner}/${forgejo.repo.name}`,
    },
  };
  fs.writeFileSync(stateFile(), JSON.stringify(st, null, 2) + "\n", { mode: 0o600 });
  process.stdout.write(JSON.stringify(st, null, 2) + "\n");
}

async function main(argv: string[]): Promise<number> {
  switch (argv[0]) {
    case "start":
      await start();
      return 0;
    case "stop":
      await stop();
      process.stdout.write(JSON.stringify({ stopped: true }) + "\n");
      return 0;
    case "status": {
      const s = await status(readState());
      process.stdout.write(JSON.stringify(s.out, null, 2) + "\n");
      return s.ok ? 0 : 1;
    }
    default:
      process.stderr.write("usage: services-cli.ts start|stop|status\n");
      return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`services-cli: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
