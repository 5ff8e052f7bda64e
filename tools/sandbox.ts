/**
 * `npm run sandbox` / `npm run sandbox:down`: the main job on a local, embedded devvm.
 *
 * up:   boots the nspawn test host (`sandbox`), starts a Vault dev server and Forgejo (admin,
 *       `infra` repo, the example roster's users), selects stack `sandbox` on a file backend
 *       with a generated passphrase, runs `pulumi up`, and prints what each user got.
 * down: stops the services and the host and removes the sandbox stack's state.
 *
 * The Pulumi CLI comes from the offline toolchain when built (dev/toolchain), else
 * from PATH or node_modules/.bin (the `pulumi` npm package on machines with internet).
 */
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { loadToolchainEnv } from "../dev/toolchain-env";

const ROOT = path.resolve(__dirname, "..");
const CACHE = process.env.WORKSTATIONS_CACHE ?? path.join(process.env.HOME ?? "/root", ".cache/workstations");
const SBX = path.join(CACHE, "sandbox");
const TSNODE = ["--require", "ts-node/register/transpile-only"];
const ROSTER = "roster.example.yaml";

function log(msg: string): void {
  process.stderr.write(`sandbox: ${msg}\n`);
}

function node(script: string, args: string[]): string {
  return execFileSync(process.execPath, [...TSNODE, path.join(ROOT, script), ...args], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
}

function pulumi(args: string[], opts: { input?: string; quiet?: boolean } = {}): string {
  const r = spawnSync("pulumi", args, {
    cwd: ROOT,
    encoding: "utf8",
    input: opts.input,
    stdio: [opts.input === undefined ? "ignore" : "pipe", opts.quiet ? "pipe" : "inherit", "inherit"],
  });
  if (r.status !== 0) throw new Error(`pulumi ${args.join(" ")} failed (exit ${r.status})`);
  return r.stdout ?? "";
}

function secretFile(name: string, make: () => string): string {
  const f = path.join(SBX, name);
  if (!fs.existsSync(f)) fs.writeFileSync(f, make(), { mode: 0o600 });
  return fs.readFileSync(f, "utf8").trim();
}

async function up(): Promise<void> {
  const t0 = Date.now();
  loadToolchainEnv();
  fs.mkdirSync(path.join(SBX, "state"), { recursive: true, mode: 0o700 });
  process.env.PULUMI_BACKEND_URL = `file://${path.join(SBX, "state")}`;
  process.env.PULUMI_CONFIG_PASSPHRASE = secretFile("passphrase", () => crypto.randomBytes(24).toString("hex"));
  process.env.PULUMI_SKIP_UPDATE_CHECK = "true";

  log("booting the test host");
  const host = JSON.parse(node("dev/testhost/testhost-cli.ts", ["up", "sandbox"]));
  log(`host on 127.0.0.1:${host.port}`);
  log("starting Vault and Forgejo");
  const svc = JSON.parse(node("dev/services-cli.ts", ["start"]));
  const vaultToken = fs.readFileSync(svc.vault.rootTokenFile, "utf8").trim();
  process.env.VAULT_TOKEN = vaultToken;
  const roster = YAML.parse(fs.readFileSync(path.join(ROOT, ROSTER), "utf8"));
  const adminToken = fs.readFileSync(svc.forgejo.adminTokenFile, "utf8").trim();
  for (const u of roster.users as Array<{ forgejo: string; email: string }>) {
    const res = await fetch(`${svc.forgejo.url}/api/v1/admin/users`, {
      method: "POST",
      headers: { Authorization: `token ${adminToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ username: u.forgejo, email: u.email, password: crypto.randomBytes(12).toString("hex"), must_change_password: false }),
    });
    if (res.status !== 201 && res.status !== 422) throw new Error(`Forgejo user ${u.forgejo}: HTTP ${res.status}`);
  }

  pulumi(["stack", "select", "sandbox", "--create"]);
  const set = (k: string, v: string) => pulumi(["config", "set", `workstations:${k}`, "--", v], { quiet: true });
  set("roster", ROSTER);
  set("host", "127.0.0.1");
  set("sshPort", String(host.port));
  set("hostKey", host.hostKey);
  set("vaultAddress", svc.vault.addr);
  set("claudeClientId", "sandbox-client-id");
  pulumi(["config", "set", "--secret", "workstations:sshPrivateKey"], { input: fs.readFileSync(host.privateKeyPath, "utf8"), quiet: true });
  pulumi(["up", "--yes", "--skip-preview"]);
  log(`first up finished ${Math.round((Date.now() - t0) / 1000)} s after start`);
  process.stdout.write(execFileSync(process.execPath, [...TSNODE, path.join(ROOT, "tools/access-report.ts"), ROSTER], { cwd: ROOT, encoding: "utf8" }));
  log(`ssh into the sandbox: npm run testhost -- ssh sandbox -- <cmd>; Forgejo: ${svc.forgejo.url}; Vault: ${svc.vault.addr}`);
}

function down(): void {
  spawnSync(process.execPath, [...TSNODE, path.join(ROOT, "dev/services-cli.ts"), "stop"], { cwd: ROOT, stdio: "inherit" });
  spawnSync(process.execPath, [...TSNODE, path.join(ROOT, "dev/testhost/testhost-cli.ts"), "down", "sandbox"], { cwd: ROOT, stdio: "inherit" });
  fs.rmSync(path.join(SBX, "state"), { recursive: true, force: true });
  fs.rmSync(path.join(ROOT, "Pulumi.sandbox.yaml"), { force: true });
  log("stopped; sandbox state removed");
}

const cmd = process.argv[2];
if (cmd === "up")
  up().catch((e) => {
    log(String(e instanceof Error ? e.message : e));
    process.exit(1);
  });
else if (cmd === "down") down();
else {
  console.error("usage: sandbox up|down");
  process.exit(2);
}
