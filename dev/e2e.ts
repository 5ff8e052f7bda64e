/**
 * Engine end-to-end harness: the real Pulumi CLI (Automation API, file backend) runs the
 * program against an nspawn test host and a Vault dev server. Extend by adding tests that
 * take an `E2E` and call `up`/`preview`/`destroy` with roster edits.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { LocalWorkspace, Stack, EngineEvent, OpType } from "@pulumi/pulumi/automation";
import { boot, createHost, destroyHost, run, TestHost } from "./testhost/testhost";
import { cacheDir, startVault, VaultServer } from "./services";
import { loadToolchainEnv } from "./toolchain-env";
import type { AuditOptions } from "./state-audit";

export const PROJECT_DIR = path.resolve(__dirname, "..");
/** Files and dirs of the project the engine needs. */
const PROJECT_FILES = ["Pulumi.yaml", "index.ts", "tsconfig.json", "tsconfig.pulumi.json", "package.json", "components", "config", "scripts"];

export interface E2E {
  dir: string;
  host: TestHost;
  vault: VaultServer;
  stack: Stack;
  secrets: string[];
  /** How to read the state as an attacker holding it would (dev/state-audit.ts). */
  audit: AuditOptions;
  writeRoster(doc: unknown): void;
  sh(cmd: string): Promise<string>;
  stop(): Promise<void>;
}

/** Creates a work dir with a copy of the project, a booted host, Vault, and a configured stack. */
export async function setupE2E(name: string, roster: unknown): Promise<E2E> {
  loadToolchainEnv();
  const dir = path.join(cacheDir(), "e2e", `${name}-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const work = path.join(dir, "project");
  fs.mkdirSync(work, { recursive: true });
  for (const f of PROJECT_FILES)
    fs.cpSync(path.join(PROJECT_DIR, f), path.join(work, f), {
      recursive: true,
      filter: (src) => !src.includes(`${path.sep}dev${path.sep}`) && !src.endsWith(`${path.sep}dev`),
    });
  fs.symlinkSync(path.join(PROJECT_DIR, "node_modules"), path.join(work, "node_modules"));
  const writeRoster = (doc: unknown) => fs.writeFileSync(path.join(work, "roster.yaml"), YAML.stringify(doc));
  writeRoster(roster);

  const host = await createHost(`e2e-${name}`);
  await boot(host);
  const vault = await startVault({ dir: path.join(dir, "vault") });
  const passphrase = crypto.randomBytes(16).toString("hex");
  const slack = `https://hooks.slack.test/services/${crypto.randomBytes(8).toString("hex")}`;
  fs.mkdirSync(path.join(dir, "state"), { recursive: true });
  const envVars = {
    PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`,
    PULUMI_CONFIG_PASSPHRASE: passphrase,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
    VAULT_TOKEN: vault.rootToken,
  };
  const stack = await LocalWorkspace.createOrSelectStack({ stackName: "e2e", workDir: work }, { envVars });
  await stack.setAllConfig({
    "workstations:host": { value: "127.0.0.1" },
    "workstations:sshPort": { value: String(host.port) },
    "workstations:hostKey": { value: host.hostKey },
    "workstations:sshPrivateKey": { value: host.privateKey, secret: true },
    "workstations:vaultAddress": { value: vault.addr },
    "workstations:claudeClientId": { value: "e2e-client-id" },
    "workstations:slackWebhook": { value: slack, secret: true },
  });
  const sh = async (cmd: string) => (await run(host, cmd)).stdout.trim();
  return {
    dir,
    host,
    vault,
    stack,
    writeRoster,
    sh,
    audit: { cwd: work, env: { ...process.env, ...envVars }, stack: "e2e", backendDir: path.join(dir, "state") },
    secrets: [host.privateKey.split("\n").slice(1, 3).join(""), vault.rootToken, slack, passphrase],
    async stop() {
      await vault.stop().catch(() => undefined);
      await destroyHost(host).catch(() => undefined);
    },
  };
}

/** URNs and ops of every resource an operation touched (anything but `same`). */
export function changeCollector(): { onEvent: (e: EngineEvent) => void; changed: Array<{ urn: string; op: OpType }> } {
  const changed: Array<{ urn: string; op: OpType }> = [];
  return {
    changed,
    onEvent(e: EngineEvent) {
      const m = e.resourcePreEvent?.metadata;
      if (m && m.op !== "same" && m.op !== "read") changed.push({ urn: m.urn, op: m.op });
    },
  };
}
