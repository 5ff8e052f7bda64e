/**
 * The ssh connection to the workstation host and its @pulumi/command shape. A leaf module:
 * config.ts reads it from the stack, and every component that runs a remote command takes it
 * from here, so config.ts, forgejo/, kube/ and web/ import one way.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";

/** SSH connection to the workstation host. The private key stays a secret Output. */
export interface HostConnection {
  host: string;
  port: number;
  user: string;
  privateKey: pulumi.Output<string>;
  hostKey: string;
}

/** The connection in the shape @pulumi/command expects. The host key is always verified. */
export function commandConnection(c: HostConnection): command.types.input.remote.ConnectionArgs {
  return {
    host: c.host,
    port: c.port,
    user: c.user,
    privateKey: c.privateKey,
    hostKey: c.hostKey,
    dialErrorLimit: 10,
    perDialTimeout: 10,
  };
}
