/**
 * Runs the program under Pulumi mocks and captures every resource with its plain inputs,
 * in registration order (the order the engine would create them, given dependsOn).
 */
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { tempDir } from "./tmp";

export const PROJECT_DIR = path.resolve(__dirname, "..");
/**
 * The secret config of the program under mocks (`workstations:<key>`, each set as a secret),
 * marked values a test looks for in what would be stored or printed in plaintext. The Forgejo
 * admin password is in the config only where a test turns Forgejo on.
 */
export const SECRET_CONFIG = {
  sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nS3CR3T-MARKER-b64-not-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n",
  vaultToken: "hvs.S3CR3T-VAULT-TOKEN-MARKER",
  slackWebhook: "https://hooks.slack.test/services/S3CR3T-SLACK-MARKER",
  forgejoAdminPassword: "S3CR3T-FORGEJO-ADMIN-PASSWORD",
} as const;
/** The start of every AppRole secret_id the mocks hand out. */
export const SECRET_ID_MARKER = "S3CR3T-SECRET-ID";
export const TEST_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForMocksOnly0000000000000000000";

export interface Captured {
  type: string;
  name: string;
  inputs: Record<string, any>;
  parent?: string;
}

let captured: Captured[] = [];

/**
 * Optional hook that sees every new resource and may return extra state. Host tests use it
 * to create the Vault resources in a real Vault server (the vault plugin is not available
 * here), so the program's own credential-delivery scripts carry real credentials.
 */
export type ResourceHook = (type: string, name: string, inputs: Record<string, any>) => Promise<Record<string, any> | undefined>;
let hook: ResourceHook | undefined;
export function setResourceHook(h: ResourceHook | undefined): void {
  hook = h;
}

pulumi.runtime.setMocks(
  {
    async newResource(args) {
      captured.push({ type: args.type, name: args.name, inputs: args.inputs });
      const extra = hook ? await hook(args.type, args.name, unsecret(args.inputs)) : undefined;
      const state: Record<string, any> = { ...args.inputs };
      if (args.type === "command:remote:Command") state.stdout = args.name === "host-facts" ? mockHostFacts : `mock stdout of ${args.name}`;
      if (args.type === "vault:appRole/authBackendRole:AuthBackendRole") state.roleId = `role-id-of-${args.inputs.roleName}`;
      if (args.type === "vault:appRole/authBackendRoleSecretId:AuthBackendRoleSecretId")
        state.secretId = `${SECRET_ID_MARKER}-${args.inputs.roleName}-${args.inputs.metadata}`;
      Object.assign(state, extra ?? {});
      return { id: `${args.name}_id`, state };
    },
    call(args) {
      return args.inputs;
    },
  },
  "workstations",
  "test",
  false,
);

/** What the host-facts command prints under mocks (components/capacity.ts): the team's 32 GiB, 16 CPUs. */
export const MOCK_HOST_FACTS = "devvm 34359738368 16";
let mockHostFacts = MOCK_HOST_FACTS;

export interface RunOptions {
  /** Roster YAML text, written to a temp file. */
  roster: string;
  /** The host-facts command's output (`<host> <RAM bytes> <CPUs>`); default MOCK_HOST_FACTS. */
  hostFacts?: string;
  /** Extra or replacing config (keys without the namespace). */
  config?: Record<string, string | undefined>;
}

export function baseConfig(rosterFile: string): Record<string, string> {
  return {
    "workstations:roster": rosterFile,
    "workstations:host": "devvm.test",
    "workstations:sshPort": "2222",
    "workstations:hostKey": TEST_HOST_KEY,
    "workstations:sshPrivateKey": SECRET_CONFIG.sshPrivateKey,
    "workstations:vaultAddress": "http://127.0.0.1:8200",
    "workstations:vaultToken": SECRET_CONFIG.vaultToken,
    "workstations:claudeClientId": "test-client-id",
    "workstations:slackWebhook": SECRET_CONFIG.slackWebhook,
  };
}

/** Builds the program (components/program.ts) with the given roster and config; returns captured resources. */
export async function runProgram(opts: RunOptions): Promise<{ resources: Captured[]; program: import("../components/program").Program }> {
  const dir = tempDir("ws-mock-");
  const rosterFile = path.join(dir, "roster.yaml");
  fs.writeFileSync(rosterFile, opts.roster);
  const cfg: Record<string, string> = baseConfig(rosterFile);
  for (const [k, v] of Object.entries(opts.config ?? {})) {
    const key = `workstations:${k}`;
    if (v === undefined) delete cfg[key];
    else cfg[key] = v;
  }
  pulumi.runtime.setAllConfig(
    cfg,
    Object.keys(SECRET_CONFIG).map((k) => `workstations:${k}`),
  );
  captured = [];
  mockHostFacts = opts.hostFacts ?? MOCK_HOST_FACTS;
  const { loadConfig } = await import("../components/config");
  const { buildProgram } = await import("../components/program");
  const program = buildProgram(loadConfig(new pulumi.Config("workstations")), PROJECT_DIR);
  await settle(program);
  const resources = captured;
  captured = [];
  return { resources, program };
}

async function settle(p: import("../components/program").Program): Promise<void> {
  const outs: pulumi.Output<unknown>[] = [
    ...p.host.ready.map((r) => r.urn),
    ...p.workstations.flatMap((w) => [...w.ready.map((r) => r.urn), w.urn]),
    ...p.purges.flatMap((x) => [x.result, x.urn]),
    p.host.urn,
  ];
  await new Promise<void>((resolve) => pulumi.all(outs).apply(() => resolve()));
  // Let registrations queued behind those outputs drain.
  await new Promise((r) => setTimeout(r, 20));
}

const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const isSecretWrapper = (v: any) => v && typeof v === "object" && v[SIG_KEY] === SECRET_SIG;

/** Replaces every secret-marked value by "[secret]": what is left would be stored in plaintext. */
export function redactSecrets(v: any): any {
  if (isSecretWrapper(v)) return "[secret]";
  if (Array.isArray(v)) return v.map(redactSecrets);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redactSecrets(x)]));
  return v;
}

/** Unwraps secret-marked values (to replay the exact inputs on a test host). */
export function unsecret(v: any): any {
  if (isSecretWrapper(v)) return unsecret(v.value);
  if (Array.isArray(v)) return v.map(unsecret);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unsecret(x)]));
  return v;
}

export function commands(rs: Captured[]): Captured[] {
  return rs.filter((r) => r.type === "command:remote:Command");
}

export function readExampleRoster(): string {
  return fs.readFileSync(path.join(PROJECT_DIR, "roster.example.yaml"), "utf8");
}

/** A whole roster entry (every field at the schema's default) for tests that build rosters in code. */
export function rosterUser(
  name: string,
  uid: number,
  extra: Partial<import("../components/roster/schema").RosterUser> = {},
): import("../components/roster/schema").RosterUser {
  return {
    name,
    uid,
    role: "power-user",
    email: `${name}@example.com`,
    forgejo: name,
    sshKeys: [],
    shell: "/bin/bash",
    codeLayout: "single",
    repos: [],
    groups: [],
    namespaces: [],
    overrides: {},
    state: "active",
    credentialRotation: 0,
    adopt: false,
    tighten: false,
    limits: {},
    ...extra,
  };
}

/** The example roster as YAML, with `state` set for the named users. */
export function exampleRosterWith(states: Record<string, string> = {}): string {
  const doc = YAML.parse(readExampleRoster()) as { users: Array<{ name: string; state?: string }> };
  for (const u of doc.users) if (states[u.name]) u.state = states[u.name];
  return YAML.stringify(doc);
}
