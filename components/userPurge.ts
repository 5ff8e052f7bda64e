import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { commandConnection, HostConnection } from "./config";
import { OffboardedPlan } from "./plan";
import { purgeScript } from "./scripts/account";

export interface UserPurgeArgs {
  /** The offboarded user; must carry `purge` (the roster approval). */
  plan: OffboardedPlan;
  connection: HostConnection;
  dependsOn?: pulumi.Input<pulumi.Resource>[];
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
    if (!args.plan.purge)
      throw new pulumi.ResourceError(`UserPurge ${name}: no purge approval in the roster (purge.approvedBy); refusing to purge`, this);
    const cmd = new command.remote.Command(`${name}-purge`, {
      connection: commandConnection(args.connection),
      create: purgeScript(args.plan),
    }, { parent: this, dependsOn: args.dependsOn, retainOnDelete: true });
    this.result = cmd.stdout;
    this.registerOutputs({ result: this.result });
  }
}
