/**
 * Engine end-to-end harness: the real Pulumi CLI (Automation API, file backend) runs the
 * whole program against an nspawn test host with every surface on: Vault (the toolchain's
 * dev server), Forgejo (the toolchain's Gitea) and Kubernetes (the toolchain's API server
 * with the fake OIDC issuer). Used by the engine e2e suites, the sandbox-like bench rows and
 * `bench:engine`:
 *
 *     const e = await setupE2E("name", rosterDoc);       // host booted, services up, stack configured
 *     e.writeRoster(doc); await e.converge();            // up, then up --expect-no-changes
 *     await e.sh("id emo"); e.sshAs("emo", key);         // root on the host; a user's own login
 *     e.auditState(extraSecrets);                        // no plaintext secret in the state
 *     await e.stop();
 */
import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { EngineEvent, LocalWorkspace, OpType, PreviewResult, Stack, UpResult } from "@pulumi/pulumi/automation";
import { boot, createHost, destroyHost, reachMachine, run, type HostKind, TestHost } from "./testhost/testhost";
import { cacheDir, ForgejoServer, KubeServer, startForgejo, startKube, startVault, VaultServer } from "./services";
import { loadToolchainEnv } from "./toolchain-env";
import { AuditOptions, plaintextSecrets, readStateAsAttacker } from "./state-audit";
import { privateTmp, tempDir } from "./tmp";

export const PROJECT_DIR = path.resolve(__dirname, "..");
/** Files and dirs of the project the engine needs. */
export const PROJECT_FILES = ["Pulumi.yaml", "index.ts", "tsconfig.json", "tsconfig.pulumi.json", "package.json", "components", "config", "scripts"];

export interface E2EOptions {
  /** Forgejo on the toolchain's Gitea (default on). */
  forgejo?: boolean;
  /** Kubernetes on the toolchain's API server (default on). */
  kube?: boolean;
  /** The project to deploy (a directory with PROJECT_FILES; default this checkout). */
  source?: string;
  /** Which kind of test host (default: $WORKSTATIONS_TESTHOST, else nspawn). */
  kind?: HostKind;
  /** Runs once the host exists and before its first boot (e.g. an nspawn bind of the real Claude CLI). */
  beforeBoot?: (host: TestHost) => void;
  /**
   * On a VM host, the services' ports (Vault, Gitea, the API server) and these ones relayed to
   * the VM's loopback (dev/testhost reachMachine), so the host's own programs reach them at the
   * same URLs as on nspawn. Off by default.
   */
  reachMachine?: { extraPorts?: number[] };
}

interface RosterUser {
  name: string;
  forgejo?: string;
  email?: string;
  state?: string;
}

export interface E2E {
  name: string;
  dir: string;
  /** The project copy the engine runs in. */
  work: string;
  host: TestHost;
  vault: VaultServer;
  forgejo?: ForgejoServer;
  kube?: KubeServer;
  stack: Stack;
  /** The CLI's environment (toolchain PATH, backend, passphrase, VAULT_TOKEN, FORGEJO_ADMIN_PASSWORD). */
  env: NodeJS.ProcessEnv;
  /** Secrets of the set-up (ssh key, tokens, passwords, passphrase) that must never be in the state in plaintext. */
  secrets: string[];
  /** How to read the state as an attacker holding it would (dev/state-audit.ts). */
  audit: AuditOptions;
  /** The roster as last written. */
  roster(): { users: RosterUser[] } & Record<string, unknown>;
  writeRoster(doc: unknown): void;
  /** Replaces the deployed project with `source`'s (e.g. projectAt(commit)): the next up runs that release. */
  useProject(source: string): void;
  /** `pulumi up` (the roster's Forgejo users are created in Gitea first, as they would exist). */
  up(o?: { onEvent?: (e: EngineEvent) => void }): Promise<UpResult>;
  /** `up`, then `up --expect-no-changes` (fails when the second would change anything). */
  converge(o?: { onEvent?: (e: EngineEvent) => void }): Promise<{ up: UpResult; upMs: number; noopMs: number }>;
  preview(o?: { onEvent?: (e: EngineEvent) => void; expectNoChanges?: boolean }): Promise<PreviewResult>;
  /** Runs a command as root on the host; its stdout, trimmed. */
  sh(cmd: string): Promise<string>;
  /** Logs in as `user` with `key` (a private key file) over ssh and runs `cmd`. */
  sshAs(user: string, key: string, cmd?: string): { code: number | null; out: string };
  /** A fresh ed25519 key pair for a user of the test (private key file and public line). */
  keypair(name: string): { priv: string; pub: string };
  /** Every plaintext hit of `secrets` and `extra` in the state read as an attacker; [] = clean. */
  auditState(extra?: readonly string[]): string[];
  stop(): Promise<void>;
}

/** Copies the project (without dev/) to `work` and links node_modules; what was there is replaced. */
function copyProject(source: string, work: string): void {
  fs.mkdirSync(work, { recursive: true });
  for (const f of PROJECT_FILES) {
    fs.rmSync(path.join(work, f), { recursive: true, force: true });
    fs.cpSync(path.join(source, f), path.join(work, f), {
      recursive: true,
      filter: (src) => !src.includes(`${path.sep}dev${path.sep}`) && !src.endsWith(`${path.sep}dev`),
    });
  }
  if (!fs.existsSync(path.join(work, "node_modules"))) fs.symlinkSync(path.join(PROJECT_DIR, "node_modules"), path.join(work, "node_modules"));
}

/**
 * The project as it was at `commit` of this repository (git archive into a temporary folder), to
 * deploy an earlier release (the upgrade suite, bench:engine's before rows). One line naming the
 * commit when this checkout's history does not have it (a shallow clone: fetch it, or clone in full).
 */
export function projectAt(commit: string): string {
  const arch = spawnSync("git", ["-C", PROJECT_DIR, "archive", "--format=tar", commit], { maxBuffer: 512 << 20 });
  if (arch.status !== 0)
    throw new Error(
      `projectAt: commit ${commit} is not in ${PROJECT_DIR}'s history (a shallow clone? run git fetch --unshallow): ${arch.stderr.toString().trim()}`,
    );
  const dir = tempDir(`ws-project-${commit}-`);
  const x = spawnSync("tar", ["-x", "-C", dir], { input: arch.stdout });
  if (x.status !== 0) throw new Error(`projectAt: unpacking ${commit} failed: ${x.stderr.toString().trim()}`);
  return dir;
}

/**
 * A command (root, on the host) that prints every entry under the given homes: for files their
 * mode, owner, size, mtime and content hash; for the rest their type, mode and owner. Sorted, so
 * two runs compare as text. Directory mtimes are left out (creating or removing an entry moves them).
 */
export function homesFingerprintCommand(users: readonly string[], exclude: readonly string[] = []): string {
  const prune = exclude.map((p) => `-path '${p}' -prune -o `).join("");
  return `cd /home && find ${users.join(" ")} -xdev ${prune}\\( -type f -printf '%p\\t%m\\t%u:%g\\t%s\\t%T@\\t' -exec sh -c 'sha256sum <"$1" | cut -c1-64' sh {} \\; \\) -o \\( ! -type f -printf '%p\\t%y\\t%m\\t%u:%g\\n' \\) | sort`;
}

/** The services of the set-up; each starts in parallel with the host's boot. */
async function startServices(dir: string, o: E2EOptions): Promise<{ vault: VaultServer; forgejo?: ForgejoServer; kube?: KubeServer }> {
  const started: Array<{ stop(): Promise<void> }> = [];
  const track = <T extends { stop(): Promise<void> }>(p: Promise<T>) => p.then((s) => (started.push(s), s));
  try {
    const [vault, forgejo, kube] = await Promise.all([
      track(startVault({ dir: path.join(dir, "vault") })),
      o.forgejo === false ? undefined : track(startForgejo({ dir: path.join(dir, "gitea") })),
      o.kube === false ? undefined : track(startKube({ dir: path.join(dir, "kube") })),
    ]);
    return { vault, forgejo, kube };
  } catch (e) {
    await Promise.all(started.map((s) => s.stop().catch(() => undefined)));
    throw e;
  }
}

/** Stack config of every surface. */
function stackConfig(host: TestHost, s: { vault: VaultServer; forgejo?: ForgejoServer; kube?: KubeServer }, slack: string) {
  const c: Record<string, { value: string; secret?: boolean }> = {
    "workstations:host": { value: "127.0.0.1" },
    "workstations:sshPort": { value: String(host.port) },
    "workstations:hostKey": { value: host.hostKey },
    "workstations:sshPrivateKey": { value: host.privateKey, secret: true },
    "workstations:vaultAddress": { value: s.vault.addr },
    "workstations:claudeClientId": { value: "e2e-client-id" },
    "workstations:slackWebhook": { value: slack, secret: true },
  };
  if (s.forgejo) {
    // The nspawn host shares the network: it reaches Gitea at the same loopback URL.
    c["workstations:forgejoUrl"] = { value: s.forgejo.url };
    c["workstations:forgejoRepo"] = { value: `${s.forgejo.repo.owner}/${s.forgejo.repo.name}` };
    c["workstations:forgejoAdminUser"] = { value: s.forgejo.adminUser };
  }
  if (s.kube) {
    c["workstations:kubeApiServer"] = { value: s.kube.server };
    c["workstations:kubeCaCert"] = { value: s.kube.caCert };
    c["workstations:kubeOidcIssuer"] = { value: s.kube.oidc.issuer };
    c["workstations:kubeOidcClientId"] = { value: s.kube.clientId };
    c["workstations:kubeconfig"] = { value: fs.readFileSync(s.kube.adminKubeconfig, "utf8"), secret: true };
  }
  return c;
}

/** Creates a work dir with a copy of the project, a booted host, the services and a configured stack. */
export async function setupE2E(name: string, roster: unknown, o: E2EOptions = {}): Promise<E2E> {
  loadToolchainEnv();
  const dir = path.join(cacheDir(), "e2e", `${name}-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const work = path.join(dir, "project");
  copyProject(o.source ?? PROJECT_DIR, work);
  let doc = JSON.parse(JSON.stringify(roster));
  const writeRoster = (d: unknown) => {
    doc = JSON.parse(JSON.stringify(d));
    fs.writeFileSync(path.join(work, "roster.yaml"), YAML.stringify(d));
  };
  writeRoster(roster);

  const host = await createHost(`e2e-${name}`, { kind: o.kind });
  let services: Awaited<ReturnType<typeof startServices>>;
  try {
    o.beforeBoot?.(host);
    [services] = await Promise.all([startServices(dir, o), boot(host)]);
  } catch (e) {
    await destroyHost(host).catch(() => undefined);
    throw e;
  }
  const { vault, forgejo, kube } = services;
  const stopAll = async () => {
    await Promise.all([vault.stop(), forgejo?.stop(), kube?.stop(), destroyHost(host)].map((p) => p?.catch(() => undefined)));
    // The work dir (project copy, state, services' data: about 70 MB) goes too; WS_KEEP_TMP=1 keeps it for a post-mortem.
    if (process.env.WS_KEEP_TMP !== "1") fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    if (o.reachMachine) {
      const ports = [vault.addr, forgejo?.url, kube?.server].filter((u): u is string => !!u).map((u) => Number(new URL(u).port));
      await reachMachine(host, [...ports, ...(o.reachMachine.extraPorts ?? [])]);
    }
    const passphrase = crypto.randomBytes(16).toString("hex");
    const slack = `https://hooks.slack.test/services/${crypto.randomBytes(8).toString("hex")}`;
    fs.mkdirSync(path.join(dir, "state"), { recursive: true });
    const envVars: Record<string, string> = {
      PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`,
      PULUMI_CONFIG_PASSPHRASE: passphrase,
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
      TMPDIR: privateTmp(dir),
      VAULT_TOKEN: vault.rootToken,
      ...(forgejo ? { FORGEJO_ADMIN_PASSWORD: forgejo.adminPassword } : {}),
    };
    const stack = await LocalWorkspace.createOrSelectStack({ stackName: "e2e", workDir: work }, { envVars });
    await stack.setAllConfig(stackConfig(host, { vault, forgejo, kube }, slack));
    const env = { ...process.env, ...envVars };
    const secrets = [host.privateKey.split("\n").slice(1, 3).join(""), vault.rootToken, slack, passphrase];
    if (forgejo) secrets.push(forgejo.adminPassword, forgejo.adminToken);
    const audit: AuditOptions = { cwd: work, env, stack: "e2e", backendDir: path.join(dir, "state") };
    return harness({ name, dir, work, host, vault, forgejo, kube, stack, env, secrets, audit, roster: () => doc, writeRoster, stop: stopAll });
  } catch (e) {
    await stopAll();
    throw e;
  }
}

type Base = Pick<
  E2E,
  "name" | "dir" | "work" | "host" | "vault" | "forgejo" | "kube" | "stack" | "env" | "secrets" | "audit" | "roster" | "writeRoster" | "stop"
>;

/** The operations on top of a set-up. */
function harness(b: Base): E2E {
  const gitUsers = new Set<string>();
  const ensureForgejoUsers = async () => {
    if (!b.forgejo) return;
    for (const u of b.roster().users) {
      const login = u.forgejo;
      if (!login || gitUsers.has(login.toLowerCase()) || login.toLowerCase() === b.forgejo.adminUser.toLowerCase()) continue;
      const r = await b.forgejo.api("GET", `users/${encodeURIComponent(login)}`);
      if (r.status === 404) await b.forgejo.createUser(login, u.email ?? `${login}@example.invalid`);
      gitUsers.add(login.toLowerCase());
    }
  };
  const keyDir = path.join(b.dir, "keys");
  const up = async (o: { onEvent?: (e: EngineEvent) => void } = {}) => {
    await ensureForgejoUsers();
    return b.stack.up({ color: "never", onEvent: o.onEvent });
  };
  return {
    ...b,
    up,
    async converge(o = {}) {
      let t0 = Date.now();
      const r = await up(o);
      const upMs = Date.now() - t0;
      t0 = Date.now();
      await noopUp(b.stack);
      return { up: r, upMs, noopMs: Date.now() - t0 };
    },
    async preview(o = {}) {
      await ensureForgejoUsers();
      return b.stack.preview({ color: "never", onEvent: o.onEvent, expectNoChanges: o.expectNoChanges });
    },
    async sh(cmd: string) {
      // One retry of a failed connection (ssh's 255): sshd can drop a connection while many open at once.
      let r = await run(b.host, cmd, { check: false });
      if (r.code === 255) {
        await new Promise((res) => setTimeout(res, 1000));
        r = await run(b.host, cmd, { check: false });
      }
      if (r.code !== 0) throw new Error(`on the host: ${cmd}: exit ${r.code}\n${r.stderr}${r.stdout}`);
      return r.stdout.trim();
    },
    sshAs: (user, key, cmd = "id -un") => sshAs(b.host, user, key, cmd),
    useProject: (source) => copyProject(source, b.work),
    keypair(name: string) {
      fs.mkdirSync(keyDir, { recursive: true, mode: 0o700 });
      const priv = path.join(keyDir, name);
      if (!fs.existsSync(priv)) {
        const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${name}@e2e`, "-f", priv], { encoding: "utf8" });
        if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
      }
      return { priv, pub: fs.readFileSync(`${priv}.pub`, "utf8").trim() };
    },
    auditState: (extra = []) => plaintextSecrets(readStateAsAttacker(b.audit), [...b.secrets, ...extra.filter((s) => s.length >= 8)]),
  };
}

/**
 * `up --expect-no-changes`; when it fails, the error names each step it would have taken with
 * the engine's detailed diff and the changed keys' old and new inputs (secrets as the engine shows
 * them), so a drift says what drifted.
 */
async function noopUp(stack: Stack): Promise<void> {
  const c = changeCollector();
  try {
    await stack.up({ color: "never", expectNoChanges: true, onEvent: c.onEvent });
  } catch (e) {
    if (c.changed.length) (e as Error).message = `the no-op up would change:\n${c.changed.map(describeChange).join("\n")}\n${(e as Error).message}`;
    throw e;
  }
}

/** One line for a step: its op and URN, the engine's detailed diff, and the changed keys' inputs before and after. */
export function describeChange(c: Change): string {
  const keys = c.diffs ?? Object.keys(c.detailedDiff ?? {});
  const pick = (i?: Record<string, unknown>) => Object.fromEntries(keys.map((k) => [k, i?.[k.split(".")[0]]]));
  return `${c.op} ${c.urn}: detailedDiff ${JSON.stringify(c.detailedDiff ?? {})}; old ${JSON.stringify(pick(c.oldInputs))}; new ${JSON.stringify(pick(c.newInputs))}`;
}

/** `ssh user@host cmd` with the user's own key (the host key checked, no agent). */
export function sshAs(h: TestHost, user: string, key: string, cmd = "id -un"): { code: number | null; out: string } {
  const r = spawnSync(
    "ssh",
    [
      ...["-i", key, "-p", String(h.port), "-o", `UserKnownHostsFile=${h.knownHostsPath}`, "-o", "StrictHostKeyChecking=yes"],
      ...["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", `${user}@127.0.0.1`, cmd],
    ],
    { encoding: "utf8", env: { ...process.env, SSH_AUTH_SOCK: "" }, timeout: 30_000 },
  );
  return { code: r.status, out: (r.stdout + r.stderr).trim() };
}

/**
 * A step of a preview or an up that changes something (any op but `same` and `read`), with the
 * inputs before and after (secrets shown as the engine shows them) and the engine's diff.
 */
export interface Change {
  urn: string;
  op: OpType;
  type: string;
  oldInputs?: Record<string, unknown>;
  newInputs?: Record<string, unknown>;
  /** The top-level keys that differ, as the engine names them. */
  diffs?: string[];
  /** The provider's detailed diff: property path -> kind of change. */
  detailedDiff?: Record<string, unknown>;
}

export function changeCollector(): { onEvent: (e: EngineEvent) => void; changed: Change[] } {
  const changed: Change[] = [];
  return {
    changed,
    onEvent(e: EngineEvent) {
      const m = e.resourcePreEvent?.metadata;
      if (m && m.op !== "same" && m.op !== "read")
        changed.push({ urn: m.urn, op: m.op, type: m.type, oldInputs: m.old?.inputs, newInputs: m.new?.inputs, diffs: m.diffs, detailedDiff: m.detailedDiff });
    },
  };
}

/** Runs `f`, recording its wall time under `label` in `times` (a suite's step-time report). */
export async function timed<T>(times: Array<[string, number]>, label: string, f: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await f();
  } finally {
    times.push([label, Date.now() - t0]);
  }
}

/** Root logins on the host so far (each remote command of the command provider is one; the count's own login is counted too). */
export async function rootLogins(e: Pick<E2E, "sh">): Promise<number> {
  return Number(await e.sh("journalctl -q -u ssh --no-pager -o cat | grep -c 'Accepted publickey for root' || true"));
}

/** The resource name of a URN (its last `::` part). */
export const urnName = (urn: string): string => urn.split("::").pop() ?? urn;
