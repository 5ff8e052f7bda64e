import * as crypto from "crypto";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { HostBundle } from "./bundle";
import { commandConnection, HostConnection } from "./config";
import { SLACK_WEBHOOK_FILE } from "./hostContract";
export { SLACK_WEBHOOK_FILE };

import { hostLibInstallScript, hostLibrary, hostLibRemoveScript } from "./scripts/hostLib";
import { installFileScript, preflightDeleteScript, preflightScript, removeFileScript, unitsApplyScript, unitsDeleteScript } from "./scripts/host";

/** Arguments of the host component. */
export interface WorkstationHostArgs {
  /** SSH connection to the host (the private key is a secret). */
  connection: HostConnection;
  /** What to install: scripts, units, managed settings, the Claude base and skel. */
  bundle: HostBundle;
  /** The roster's login shells; the preflight checks each is installed. */
  shells?: readonly string[];
  /**
   * Slack webhook for alerts (secret); absent = disabled. Written root:root 0600 to
   * SLACK_WEBHOOK_FILE. Only the root-side notifier (workstations-alert@.service, via its own
   * LoadCredential=) reads it; the renewal agent runs as the user and never gets it, it hands
   * messages to /run/workstations/alert.sock.
   */
  slackWebhook?: pulumi.Input<string>;
}

/**
 * One per host: preflight checks, the bundled runtime scripts, systemd template units,
 * the managed Claude settings, the shared Claude base and /etc/skel. Every file it copies
 * is removed again when the component is deleted.
 */
export class WorkstationHost extends pulumi.ComponentResource {
  /** Depend on this to run after the host is ready (everything installed, units loaded). */
  public readonly ready: pulumi.Resource[];
  public readonly installedFiles: pulumi.Output<string[]>;

  constructor(name: string, args: WorkstationHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("workstations:index:Host", name, {}, opts);
    const connection = commandConnection(args.connection);
    const preflight = new command.remote.Command(
      `${name}-preflight`,
      {
        connection,
        addPreviousOutputInEnv: false,
        create: preflightScript(args.shells),
        update: preflightScript(args.shells),
        delete: preflightDeleteScript(),
      },
      { parent: this },
    );

    const files = args.bundle.files.map(
      (f) =>
        new command.remote.Command(
          `${name}-file-${f.path}`,
          {
            connection,
            addPreviousOutputInEnv: false,
            create: installFileScript(f),
            update: installFileScript(f),
            delete: removeFileScript(f),
            stdin: f.content,
          },
          { parent: this, dependsOn: [preflight], deleteBeforeReplace: true },
        ),
    );
    const slackFile = { path: SLACK_WEBHOOK_FILE, mode: "0600" };
    const slack = new command.remote.Command(
      `${name}-slack-webhook`,
      {
        connection,
        addPreviousOutputInEnv: false,
        create: installFileScript(slackFile),
        update: installFileScript(slackFile),
        delete: removeFileScript(slackFile),
        stdin: args.slackWebhook ? pulumi.secret(args.slackWebhook) : "",
      },
      { parent: this, dependsOn: [preflight], additionalSecretOutputs: ["stdin"] },
    );
    files.push(slack);
    // The per-user logic, once per host (scripts/hostLib.ts). No `update`: a new library
    // version runs create again, which adds that version beside the old ones.
    const lib = hostLibrary();
    const hostLib = new command.remote.Command(
      `${name}-lib`,
      {
        connection,
        addPreviousOutputInEnv: false,
        create: hostLibInstallScript(),
        delete: hostLibRemoveScript(),
        stdin: lib.content,
      },
      { parent: this, dependsOn: [preflight] },
    );
    files.push(hostLib);
    const digest = crypto
      .createHash("sha256")
      .update(args.bundle.units.map((u) => `${path.basename(u.path)}\0${u.content}`).join("\0"))
      .digest("hex")
      .slice(0, 16);
    const units = new command.remote.Command(
      `${name}-units`,
      {
        connection,
        addPreviousOutputInEnv: false,
        create: unitsApplyScript(digest, args.bundle.enable),
        update: unitsApplyScript(digest, args.bundle.enable),
        delete: unitsDeleteScript(args.bundle.enable),
      },
      { parent: this, dependsOn: files },
    );

    this.ready = [preflight, ...files, units];
    this.installedFiles = pulumi.output(args.bundle.files.map((f) => f.path));
    this.registerOutputs({ installedFiles: this.installedFiles });
  }
}
