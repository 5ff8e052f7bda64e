import * as crypto from "crypto";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { hostArchive, HostBundle, writeHostArchive } from "./bundle";
import { commandConnection, HostConnection } from "./connection";
import { SLACK_WEBHOOK_FILE } from "./hostContract";
export { SLACK_WEBHOOK_FILE };

import { earlyoomApplyScript, earlyoomRemoveScript, hostLibrary } from "./scripts/hostLib";
import { installFileScript, preflightDeleteScript, preflightScript, removeFileScript, unitsApplyScript, unitsDeleteScript } from "./scripts/host";
import { HOST_FILES_ARCHIVE, hostFilesInstallScript, hostFilesRemoveScript } from "./scripts/hostFiles";
import { legacyRetireScript } from "./scripts/legacy";

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
  /** earlyoom's unit drop-in (components/plan/earlyoom.ts); absent = the program leaves earlyoom alone. */
  earlyoomDropIn?: string;
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
  /** sha256 of the host files' archive (what the install resource's inputs carry). */
  public readonly filesDigest: string;

  constructor(name: string, args: WorkstationHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("workstations:index:Host", name, {}, opts);
    const connection = commandConnection(args.connection);
    // No `update` anywhere: a changed command runs `create` again (the scripts converge), and
    // the state holds each script once instead of twice.
    const preflight = new command.remote.Command(
      `${name}-preflight`,
      {
        connection,
        addPreviousOutputInEnv: false,
        create: preflightScript(args.shells),
        delete: preflightDeleteScript(),
      },
      { parent: this },
    );

    // The shipped files as one archive (components/bundle.ts): the copy's state keeps the
    // asset's hash and the install's inputs the digest, not the files' text (issue 25).
    // Host library versions are kept on the host (a user resource's delete calls the version
    // it was created with); the install's delete removes them all.
    const lib = hostLibrary();
    const archive = hostArchive([...args.bundle.files, { path: lib.path, mode: "0755", content: lib.content, keep: true }]);
    // The team's hand-run pieces (the hourly reconcile, the legacy tmux-persist) moved aside
    // before any file of the program's lands on their paths (issue 21 item 3); nothing on a host without them.
    const legacy = new command.remote.Command(
      `${name}-legacy`,
      { connection, addPreviousOutputInEnv: false, create: legacyRetireScript() },
      { parent: this, dependsOn: [preflight] },
    );
    const stage = new command.remote.CopyToRemote(
      `${name}-files-copy`,
      {
        connection,
        source: new pulumi.asset.FileAsset(writeHostArchive(archive)),
        remotePath: HOST_FILES_ARCHIVE,
        // A new host (address or port) gets its own copy; the archive's hash decides the rest.
        triggers: [args.connection.host, args.connection.port],
      },
      { parent: this, dependsOn: [preflight] },
    );
    const files = new command.remote.Command(
      `${name}-files`,
      {
        connection,
        addPreviousOutputInEnv: false,
        create: hostFilesInstallScript(archive.digest, lib.path),
        delete: hostFilesRemoveScript(),
      },
      { parent: this, dependsOn: [stage, legacy] },
    );
    const slackFile = { path: SLACK_WEBHOOK_FILE, mode: "0600" };
    const slack = new command.remote.Command(
      `${name}-slack-webhook`,
      {
        connection,
        addPreviousOutputInEnv: false,
        create: installFileScript(slackFile),
        delete: removeFileScript(slackFile),
        stdin: args.slackWebhook ? pulumi.secret(args.slackWebhook) : "",
      },
      { parent: this, dependsOn: [preflight], additionalSecretOutputs: ["stdin"] },
    );
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
        delete: unitsDeleteScript(args.bundle.enable),
      },
      { parent: this, dependsOn: [files, slack] },
    );

    // The backstop (issue 23): earlyoom's arguments, as a drop-in of the package's unit.
    if (args.earlyoomDropIn !== undefined)
      new command.remote.Command(
        `${name}-earlyoom`,
        { connection, addPreviousOutputInEnv: false, create: earlyoomApplyScript(args.earlyoomDropIn), delete: earlyoomRemoveScript() },
        { parent: this, dependsOn: [files] },
      );

    // The units run after everything else here: depending on them is depending on all of it.
    this.ready = [units];
    this.installedFiles = pulumi.output(args.bundle.files.map((f) => f.path));
    this.filesDigest = archive.digest;
    this.registerOutputs({});
  }
}
