/**
 * `workstations:index:WebAccess`: the web surfaces' identity files and T3 Code servers on the
 * host, as the web plan decides them (components/plan/web.ts; README "Web access"). One
 * command, host-level: its input is the web plan (who is mapped, who is an admin, who runs
 * T3), so it runs again exactly when that set changes, in the same `up` that onboards,
 * suspends or offboards a user. The verbs are components/scripts/web.ts.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { commandConnection, HostConnection } from "../connection";
import type { WebPlan } from "../plan/web";
import { webApplyScript, webRemoveScript } from "../scripts/hostLib";

export interface WebAccessArgs {
  web: WebPlan;
  /** Run the optional web terminal (workstations:webTerminal). */
  terminal?: boolean;
  connection: HostConnection;
  /** The host component and every planned account: the files name accounts that must exist. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export class WebAccess extends pulumi.ComponentResource {
  /** The files and units, written. */
  public readonly files: command.remote.Command;

  constructor(name: string, args: WebAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("workstations:index:WebAccess", name, {}, opts);
    // No `update`: a changed plan runs `create` again, which regenerates every file whole.
    this.files = new command.remote.Command(
      `${name}-files`,
      {
        connection: commandConnection(args.connection),
        addPreviousOutputInEnv: false,
        create: webApplyScript(args.web, args.terminal ?? false),
        delete: webRemoveScript(),
      },
      { parent: this, dependsOn: args.dependsOn },
    );
    this.registerOutputs({});
  }
}
