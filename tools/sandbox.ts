/**
 * `npm run sandbox` / `npm run sandbox:down`: the main job on a local, embedded devvm, with
 * every surface on.
 *
 * up:   boots the nspawn test host (`sandbox`), starts Vault and Forgejo (the toolchain's Gitea,
 *       dev/services-cli.ts) and Kubernetes (the toolchain's kube-apiserver with the fake OIDC
 *       issuer, kept running by a detached `sandbox.ts kube-serve`), writes the sandbox roster
 *       (roster.example.yaml with a generated key pair per user, so you can log in as them),
 *       selects stack `sandbox` on a file backend with a generated passphrase, runs `pulumi up`,
 *       and prints what each user got and how to look at it: log in as a user, the Forgejo
 *       clone, the kubeconfigs. A second run reuses what runs and converges (`up` again).
 * down: stops the services and the host and removes the sandbox stack's state.
 *
 * The Pulumi CLI comes from the offline toolchain when built (dev/toolchain), else
 * from PATH or node_modules/.bin (the `pulumi` npm package on machines with internet).
 */
import { execFileSync, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { tempDir } from "../dev/tmp";
import { loadToolchainEnv } from "../dev/toolchain-env";

const ROOT = path.resolve(__dirname, "..");
const CACHE = process.env.WORKSTATIONS_CACHE ?? path.join(process.env.HOME ?? "/root", ".cache/workstations");
const SBX = path.join(CACHE, "sandbox");
const KUBE_STATE = path.join(SBX, "kube.json");
const TSNODE = ["--require", "ts-node/register/transpile-only"];
const EXAMPLE = "roster.example.yaml";

interface KubeState {
  pid: number;
  server: string;
  caCert: string;
  adminKubeconfig: string;
  issuer: string;
  clientId: string;
}

function log(msg: string): void {
  process.stderr.write(`sandbox: ${msg}\n`);
}

/** Runs a dev CLI (in parallel with the others); its stdout. */
async function node(script: string, args: string[]): Promise<string> {
  const child = spawn(process.execPath, [...TSNODE, path.join(ROOT, script), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (c) => (out += c));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  if (code !== 0) throw new Error(`${script} ${args.join(" ")} failed (exit ${code})`);
  return out;
}

let pulumiTmp = "";

function pulumi(args: string[], opts: { input?: string; quiet?: boolean } = {}): string {
  // The engine's temp files (the kubernetes provider's copy of the admin kubeconfig) go with this process.
  pulumiTmp ||= tempDir("ws-sandbox-pulumi-");
  const r = spawnSync("pulumi", ["--non-interactive", ...args], {
    cwd: ROOT,
    env: { ...process.env, TMPDIR: pulumiTmp },
    encoding: "utf8",
    input: opts.input,
    maxBuffer: 256 << 20,
    stdio: [opts.input === undefined ? "ignore" : "pipe", opts.quiet ? "pipe" : "inherit", opts.quiet ? "pipe" : "inherit"],
  });
  if (r.status !== 0) throw new Error(`pulumi ${args.join(" ")} failed (exit ${r.status})${opts.quiet ? `: ${r.stderr}` : ""}`);
  return r.stdout ?? "";
}

function secretFile(name: string, make: () => string): string {
  const f = path.join(SBX, name);
  if (!fs.existsSync(f)) fs.writeFileSync(f, make(), { mode: 0o600 });
  return fs.readFileSync(f, "utf8").trim();
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The kube-apiserver of the sandbox: reused while its keeper runs, else started by a detached keeper. */
async function kubeUp(): Promise<KubeState> {
  const ready = async (): Promise<KubeState | undefined> => {
    try {
      const st = JSON.parse(fs.readFileSync(KUBE_STATE, "utf8")) as KubeState;
      return alive(st.pid) ? st : undefined;
    } catch {
      return undefined;
    }
  };
  const running = await ready();
  if (running) return running;
  fs.rmSync(KUBE_STATE, { force: true });
  const logFile = path.join(SBX, "kube-serve.log");
  const out = fs.openSync(logFile, "w", 0o600);
  const child = spawn(process.execPath, [...TSNODE, __filename, "kube-serve"], { cwd: ROOT, detached: true, stdio: ["ignore", out, out] });
  child.unref();
  const t0 = Date.now();
  while (Date.now() - t0 < 300_000) {
    const st = await ready();
    if (st) return st;
    if (child.exitCode !== null || !alive(child.pid!)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the sandbox's kube-apiserver did not start; see ${logFile}`);
}

/** `sandbox.ts kube-serve`: starts the API server (and the OIDC issuer it trusts) and keeps them running. */
async function kubeServe(): Promise<void> {
  const { startKube } = await import("../dev/services");
  const kube = await startKube({ dir: path.join(SBX, "kube") });
  const st: KubeState = {
    pid: process.pid,
    server: kube.server,
    caCert: kube.caCert,
    adminKubeconfig: kube.adminKubeconfig,
    issuer: kube.oidc.issuer,
    clientId: kube.clientId,
  };
  fs.writeFileSync(KUBE_STATE, JSON.stringify(st, null, 2) + "\n", { mode: 0o600 });
  const stop = () => void kube.stop().finally(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  setInterval(() => undefined, 1 << 30);
}

/**
 * The sandbox's roster: made once from the example roster with a generated key pair per user
 * (kept in SBX/keys), so a newcomer can log in as each; then theirs to edit (a next run keeps
 * it; `sandbox:down` removes it).
 */
function sandboxRoster(): { file: string; doc: { users: Array<{ name: string; forgejo: string; email: string; state?: string; sshKeys: string[] }> } } {
  const file = path.join(SBX, "roster.yaml");
  if (fs.existsSync(file)) return { file, doc: YAML.parse(fs.readFileSync(file, "utf8")) };
  const doc = YAML.parse(fs.readFileSync(path.join(ROOT, EXAMPLE), "utf8"));
  const keys = path.join(SBX, "keys");
  fs.mkdirSync(keys, { recursive: true, mode: 0o700 });
  for (const u of doc.users) {
    const priv = path.join(keys, u.name);
    if (!fs.existsSync(priv)) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${u.name}@sandbox`, "-f", priv]);
    u.sshKeys = [fs.readFileSync(`${priv}.pub`, "utf8").trim()];
  }
  fs.writeFileSync(file, `# the sandbox's roster: ${EXAMPLE} with the key pairs in ${keys}\n${YAML.stringify(doc)}`);
  return { file, doc };
}

interface Services {
  vault: { addr: string; rootTokenFile: string };
  forgejo: { url: string; adminUser: string; adminPasswordFile: string; adminTokenFile: string; repo: string };
}

async function forgejoUsers(svc: Services, users: Array<{ forgejo: string; email: string }>): Promise<void> {
  const adminToken = fs.readFileSync(svc.forgejo.adminTokenFile, "utf8").trim();
  for (const u of users) {
    const res = await fetch(`${svc.forgejo.url}api/v1/admin/users`, {
      method: "POST",
      headers: { Authorization: `token ${adminToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ username: u.forgejo, email: u.email, password: crypto.randomBytes(12).toString("hex"), must_change_password: false }),
    });
    if (res.status !== 201 && res.status !== 422) throw new Error(`Forgejo user ${u.forgejo}: HTTP ${res.status}`);
  }
}

function configure(host: { port: number; hostKey: string; privateKeyPath: string }, svc: Services, kube: KubeState, rosterFile: string): void {
  pulumi(["stack", "select", "sandbox", "--create"], { quiet: true });
  const values: Record<string, string> = {
    roster: rosterFile,
    host: "127.0.0.1",
    sshPort: String(host.port),
    hostKey: host.hostKey,
    vaultAddress: svc.vault.addr,
    claudeClientId: "sandbox-client-id",
    forgejoUrl: svc.forgejo.url,
    forgejoRepo: svc.forgejo.repo,
    forgejoAdminUser: svc.forgejo.adminUser,
    kubeApiServer: kube.server,
    kubeCaCert: kube.caCert,
    kubeOidcIssuer: kube.issuer,
    kubeOidcClientId: kube.clientId,
  };
  const plain = Object.entries(values).flatMap(([k, v]) => ["--plaintext", `workstations:${k}=${v}`]);
  pulumi(["config", "set-all", "--stack", "sandbox", ...plain], { quiet: true });
  pulumi(["config", "set", "--stack", "sandbox", "--secret", "workstations:sshPrivateKey"], {
    input: fs.readFileSync(host.privateKeyPath, "utf8"),
    quiet: true,
  });
  pulumi(["config", "set", "--stack", "sandbox", "--secret", "workstations:kubeconfig"], { input: fs.readFileSync(kube.adminKubeconfig, "utf8"), quiet: true });
}

async function up(): Promise<void> {
  const t0 = Date.now();
  const since = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
  loadToolchainEnv();
  fs.mkdirSync(path.join(SBX, "state"), { recursive: true, mode: 0o700 });
  process.env.PULUMI_BACKEND_URL = `file://${path.join(SBX, "state")}`;
  process.env.PULUMI_CONFIG_PASSPHRASE = secretFile("passphrase", () => crypto.randomBytes(24).toString("hex"));
  process.env.PULUMI_SKIP_UPDATE_CHECK = "true";
  process.env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION = "true";

  log("booting the test host; starting Vault, Forgejo and Kubernetes");
  const [host, svc, kube] = await Promise.all([
    node("dev/testhost/testhost-cli.ts", ["up", "sandbox"]).then((o) => JSON.parse(o)),
    node("dev/services-cli.ts", ["start"]).then((o) => JSON.parse(o) as Services),
    kubeUp(),
  ]);
  log(`host on 127.0.0.1:${host.port}, Vault ${svc.vault.addr}, Forgejo ${svc.forgejo.url}, Kubernetes ${kube.server} (${since()})`);
  process.env.VAULT_TOKEN = fs.readFileSync(svc.vault.rootTokenFile, "utf8").trim();
  process.env.FORGEJO_ADMIN_PASSWORD = fs.readFileSync(svc.forgejo.adminPasswordFile, "utf8").trim();
  const roster = sandboxRoster();
  await forgejoUsers(svc, roster.doc.users);
  configure(host, svc, kube, roster.file);
  pulumi(["up", "--yes", "--skip-preview", "--stack", "sandbox"]);
  log(`up finished ${since()} after start`);
  process.stdout.write(execFileSync(process.execPath, [...TSNODE, path.join(ROOT, "tools/access-report.ts"), roster.file], { cwd: ROOT, encoding: "utf8" }));
  process.stdout.write(guide(host, svc, kube, roster.doc.users));
  log(`ready in ${since()}`);
}

/** What a newcomer can look at, with the exact commands. */
function guide(host: { port: number; dir: string }, svc: Services, kube: KubeState, users: Array<{ name: string; forgejo: string; state?: string }>): string {
  const active = users.filter((u) => (u.state ?? "active") === "active");
  const ssh = (u: string) =>
    `ssh -i ${path.join(SBX, "keys", u)} -p ${host.port} -o UserKnownHostsFile=${path.join(host.dir, "known_hosts")} -o IdentitiesOnly=yes ${u}@127.0.0.1`;
  return `
The sandbox devvm is up (stack "sandbox", state in ${path.join(SBX, "state")}).

Log in as a user (their keys are in ${path.join(SBX, "keys")}):
${active.map((u) => `  ${ssh(u.name)}`).join("\n")}
  (suspended and offboarded users are refused: ${users
    .filter((u) => (u.state ?? "active") !== "active")
    .map((u) => u.name)
    .join(", ")})
  as root: npm run testhost -- ssh sandbox -- <command>

Forgejo (Gitea ${svc.forgejo.url}, admin ${svc.forgejo.adminUser}, password in ${svc.forgejo.adminPasswordFile}):
  the infra repo: git clone ${svc.forgejo.url}${svc.forgejo.repo}.git
  each active user's clone on the devvm: ~/code (e.g. ${ssh(active[0]?.name ?? "viktor")} git -C code log --oneline -1)
  their access token is in ~/.git-credentials (0600)

Kubernetes (${kube.server}):
  as cluster admin (kubectl from the toolchain: eval "$(bash dev/toolchain env)"):
    kubectl --kubeconfig ${kube.adminKubeconfig} get namespaces,rolebindings -A -l app.kubernetes.io/managed-by=workstations
  a user's kubeconfig on the devvm: ~/.kube/config (e.g. ${ssh("nadia")} cat .kube/config); its OIDC login needs the
  kubectl oidc-login plugin and a real issuer, so in the sandbox use the admin kubeconfig above

Vault (${svc.vault.addr}, root token in ${svc.vault.rootTokenFile}): each active user's AppRole credential is ~/.config/claude-token-renew/vault.json

Change roster: edit ${path.join(SBX, "roster.yaml")} and run npm run sandbox again (or pulumi preview/up --stack sandbox with
PULUMI_BACKEND_URL=file://${path.join(SBX, "state")} and the passphrase in ${path.join(SBX, "passphrase")}). Stop: npm run sandbox:down
`;
}

function down(): void {
  spawnSync(process.execPath, [...TSNODE, path.join(ROOT, "dev/services-cli.ts"), "stop"], { cwd: ROOT, stdio: "inherit" });
  try {
    const st = JSON.parse(fs.readFileSync(KUBE_STATE, "utf8")) as KubeState;
    if (alive(st.pid)) process.kill(st.pid, "SIGTERM");
  } catch {
    /* not running */
  }
  fs.rmSync(KUBE_STATE, { force: true });
  spawnSync(process.execPath, [...TSNODE, path.join(ROOT, "dev/testhost/testhost-cli.ts"), "down", "sandbox"], { cwd: ROOT, stdio: "inherit" });
  fs.rmSync(path.join(SBX, "state"), { recursive: true, force: true });
  fs.rmSync(path.join(SBX, "roster.yaml"), { force: true });
  fs.rmSync(path.join(ROOT, "Pulumi.sandbox.yaml"), { force: true });
  log("stopped; sandbox state removed");
}

const fail = (e: unknown) => {
  log(String(e instanceof Error ? e.message : e));
  process.exit(1);
};
const cmd = process.argv[2];
if (cmd === "up") up().catch(fail);
else if (cmd === "down") down();
else if (cmd === "kube-serve") kubeServe().catch(fail);
else {
  console.error("usage: sandbox up|down");
  process.exit(2);
}
