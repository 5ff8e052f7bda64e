import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { commandConnection, HostConnection } from "./connection";
import { OffboardedPlan } from "./plan";
import { purgeScript } from "./scripts/hostLib";
import { shq } from "./scripts/shell";
import { KV_MOUNT, KV_PREFIX } from "./vault";

export interface UserPurgeArgs {
  /** The offboarded user; must carry `purge` (the roster approval). */
  plan: OffboardedPlan;
  connection: HostConnection;
  dependsOn?: pulumi.Input<pulumi.Resource>[];
  /** Vault whose data of this user is deleted (KV metadata = every version). */
  vault?: { address: string; token?: pulumi.Output<string> };
}

/** Node script run on the Pulumi runner: deletes every version of the user's KV secret. */
export function vaultPurgeScript(user: string): string {
  const js =
    `const a=process.env.VAULT_ADDR,t=process.env.VAULT_TOKEN;if(!t){console.error("VAULT_TOKEN is not set on the runner");process.exit(2)}` +
    `fetch(a+"/v1/${KV_MOUNT}/metadata/${KV_PREFIX}/${user}",{method:"DELETE",headers:{"X-Vault-Token":t}})` +
    `.then(r=>{if(r.status!==204&&r.status!==404){console.error("Vault refused to delete ${user}'s data: HTTP "+r.status);process.exit(1)}console.log("vault data of ${user} deleted")})` +
    `.catch(e=>{console.error("Vault unreachable at "+a+": "+e.message);process.exit(1)})`;
  return `node -e ${shq(js)}`;
}

/**
 * The gated, destructive end of offboarding: archive the home (verified), then delete the
 * account and home. Created only for an offboarded roster entry with `purge.approvedBy`.
 * It runs once; deleting this resource does nothing (the archive stays on the host).
 */
export class UserPurge extends pulumi.ComponentResource {
  public readonly result: pulumi.Output<string>;

  constructor(name: string, args: UserPurgeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("workstations:index:UserPurge", name, {}, opts);
    if (!args.plan.purge) throw new pulumi.ResourceError(`UserPurge ${name}: no purge approval in the roster (purge.approvedBy); refusing to purge`, this);
    const cmd = new command.remote.Command(
      `${name}-purge`,
      {
        connection: commandConnection(args.connection),
        addPreviousOutputInEnv: false,
        create: purgeScript(args.plan),
      },
      { parent: this, dependsOn: args.dependsOn, retainOnDelete: true },
    );
    const vaultCmd = args.vault
      ? new command.local.Command(
          `${name}-purge-vault`,
          {
            create: vaultPurgeScript(args.plan.name),
            environment: args.vault.token ? { VAULT_ADDR: args.vault.address, VAULT_TOKEN: args.vault.token } : { VAULT_ADDR: args.vault.address },
          },
          { parent: this, retainOnDelete: true, additionalSecretOutputs: ["environment"] },
        )
      : undefined;
    this.result = vaultCmd ? pulumi.all([cmd.stdout, vaultCmd.stdout]).apply(([a, b]) => `${a}\n${b}`) : cmd.stdout;
    this.registerOutputs({ result: this.result });
  }
}
