/**
 * Vault for the Claude token renewal agent (SPEC §3.6, docs/CONTRACTS.md): one shared KV v2
 * mount and AppRole backend, and per user a policy confined to that user's path, an AppRole
 * role and one secret_id delivered to the user's home over stdin.
 */
import * as pulumi from "@pulumi/pulumi";
import * as vault from "@pulumi/vault";
import * as command from "@pulumi/command";
import { commandConnection, HostConnection } from "./connection";
import { UserPlan, VaultGrant } from "./plan";
import { vaultCredDeliverScript, vaultCredRemoveScript } from "./scripts/hostLib";

export const KV_MOUNT = "claude-tokens";
export const KV_PREFIX = "users";
export const APPROLE_MOUNT = "approle";

/**
 * The policy of one user's renewal agent: only its own secret (`path` under the KV mount, the
 * plan's `grants.vault.path`), no delete, no list.
 */
export function vaultPolicyHcl(user: string, path = `${KV_PREFIX}/${user}`): string {
  return `# claude-renew-${user}: the token-renew agent of ${user} may use only ${user}'s secret.
path "${KV_MOUNT}/data/${path}" {
  capabilities = ["create", "read", "update"]
}
path "${KV_MOUNT}/metadata/${path}" {
  capabilities = ["read", "update"]
  allowed_parameters = {
    "custom_metadata" = []
  }
}
`;
}

export interface VaultSharedArgs {
  provider: vault.Provider;
}

/** Created once: the KV v2 mount (CAS required) and the AppRole auth backend. */
export class VaultShared extends pulumi.ComponentResource {
  public readonly kvMount: pulumi.Output<string>;
  public readonly approlePath: pulumi.Output<string>;
  public readonly provider: vault.Provider;

  constructor(name: string, args: VaultSharedArgs, opts?: pulumi.ComponentResourceOptions) {
    super("workstations:index:VaultShared", name, {}, opts);
    const o = { parent: this, provider: args.provider };
    this.provider = args.provider;
    const mount = new vault.Mount(
      `${name}-kv`,
      {
        path: KV_MOUNT,
        type: "kv",
        options: { version: "2" },
        description: "Claude OAuth state, one path per workstation user",
      },
      { ...o, protect: false },
    );
    new vault.kv.SecretBackendV2(`${name}-kv-config`, { mount: mount.path, casRequired: true, maxVersions: 20 }, o);
    const approle = new vault.AuthBackend(`${name}-approle`, { type: "approle", path: APPROLE_MOUNT, description: "workstation agents" }, o);
    this.kvMount = mount.path;
    this.approlePath = approle.path;
    this.registerOutputs({ kvMount: this.kvMount, approlePath: this.approlePath });
  }
}

export interface UserVaultArgs {
  plan: UserPlan;
  /** The plan's Vault grant of this user (`plan.grants.vault`). */
  grant: VaultGrant;
  shared: VaultShared;
  connection: HostConnection;
  /** Global rotation counter from config; combined with the roster's per-user counter. */
  rotation: string;
  /** The account must exist before the credential is delivered. */
  account: pulumi.Resource;
}

/** Creates the per-user Vault resources as children of `parent` (the UserWorkstation). */
export function userVault(parent: pulumi.Resource, args: UserVaultArgs): { deliver: command.remote.Command; roleName: pulumi.Output<string> } {
  const p = args.plan;
  const o = { parent, provider: args.shared.provider };
  const g = args.grant;
  const policy = new vault.Policy(`${p.name}-vault-policy`, { name: g.policy, policy: vaultPolicyHcl(p.name, g.path) }, o);
  const role = new vault.approle.AuthBackendRole(
    `${p.name}-vault-role`,
    {
      backend: args.shared.approlePath,
      roleName: g.role,
      tokenPolicies: [policy.name],
      tokenNoDefaultPolicy: true,
      tokenType: "service",
      tokenTtl: 86400,
      tokenMaxTtl: 86400,
      secretIdTtl: 0,
      secretIdNumUses: 0,
      bindSecretId: true,
    },
    o,
  );
  // metadata is ForceNew: bumping the rotation creates a new secret_id, the delivery
  // rewrites the file, then the old secret_id is destroyed.
  const secretId = new vault.approle.AuthBackendRoleSecretId(
    `${p.name}-vault-secret-id`,
    {
      backend: args.shared.approlePath,
      roleName: role.roleName,
      metadata: JSON.stringify({ user: p.name, rotation: `${args.rotation}.${p.credentialRotation}` }),
    },
    { ...o, additionalSecretOutputs: ["secretId", "wrappingToken"] },
  );
  const cred = pulumi.secret(pulumi.all([role.roleId, secretId.secretId]).apply(([role_id, secret_id]) => JSON.stringify({ role_id, secret_id }) + "\n"));
  const deliver = new command.remote.Command(
    `${p.name}-vault-credential`,
    {
      connection: commandConnection(args.connection),
      addPreviousOutputInEnv: false,
      create: vaultCredDeliverScript(p),
      delete: vaultCredRemoveScript(p),
      stdin: cred,
    },
    { parent, dependsOn: [args.account], additionalSecretOutputs: ["stdin"] },
  );
  return { deliver, roleName: role.roleName };
}
