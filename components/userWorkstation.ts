import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { commandConnection, HostConnection } from "./connection";
import { UserPlan } from "./plan";
import { HomeInputs } from "./scripts/home";
import { accountAndHomeApplyScript, accountCutScript, limitsApplyScript, limitsRemoveScript, userUnitsScript } from "./scripts/hostLib";
import { userVault, VaultShared } from "./vault";
import { UserForgejoArgs, userForgejo } from "./forgejo";
import { UserKubeArgs, userKube } from "./kube";

/** Arguments of one user's workstation. */
export interface UserWorkstationArgs {
  /** The user's plan (from `planRoster`): active or suspended. */
  plan: UserPlan;
  /** SSH connection to the host. */
  connection: HostConnection;
  /** Managed content every home gets (claudeMd mirror, launcher). */
  home: HomeInputs;
  /** Vault for the token renewal agent; per-user resources exist only while the user is active. */
  vault?: { shared: VaultShared; rotation: string };
  /** Forgejo (components/forgejo): collaborator, access token, ~/.git-credentials, ~/code; absent = off. */
  forgejo?: UserForgejoArgs;
  /** Kubernetes (components/kube): namespaces, RBAC bindings, dashboard token, ~/.kube/config; absent = off. */
  kube?: UserKubeArgs;
  /** The capacity check's result (components/capacity.ts): the limits are written only when it holds. */
  capacityOk?: pulumi.Input<string>;
  /** Resources that must exist first (the host component's `ready`). */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/**
 * Everything one roster user gets on the workstation. Deleting the component (by
 * `pulumi destroy --target` or by marking the user offboarded) runs the reversible cut;
 * nothing is deleted from the home.
 */
export class UserWorkstation extends pulumi.ComponentResource {
  public readonly userName: pulumi.Output<string>;
  public readonly uid: pulumi.Output<number>;
  public readonly home: pulumi.Output<string>;
  public readonly state: pulumi.Output<string>;
  public readonly groups: pulumi.Output<string[]>;
  /** The account resource: later parts (Vault credential delivery, Forgejo PAT) depend on it. */
  public readonly account: command.remote.Command;
  /** The user's AppRole role name while they have Vault access. */
  public readonly vaultRole: pulumi.Output<string | undefined>;
  /** Depend on these to run after the user's account and home are in place. */
  public readonly ready: pulumi.Resource[];
  /** Namespace -> the token of the user's dashboard ServiceAccount there (secret), while they have access. */
  public readonly dashboardTokens: Record<string, pulumi.Output<string>> = {};

  constructor(name: string, args: UserWorkstationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("workstations:index:UserWorkstation", name, {}, opts);
    const p = args.plan;
    if ((p.state as string) === "offboarded")
      throw new pulumi.ResourceError(`UserWorkstation ${name}: offboarded users get no workstation (plan state ${p.state})`, this);
    if (p.name !== name) throw new pulumi.ResourceError(`UserWorkstation ${name}: resource name must equal the plan's user name (${p.name})`, this);
    const connection = commandConnection(args.connection);
    const common = { connection, addPreviousOutputInEnv: false };

    // The user's slice and pane caps (scripts/limits.ts), keyed by uid: written before the
    // account exists, so the user's manager (started by the account's linger) and first login
    // already run under them; kept while suspended, removed after the offboarding cut (the
    // account depends on them, so its cut runs first). Written only once the capacity check holds.
    const limits = new command.remote.Command(
      `${name}-limits`,
      {
        ...common,
        create: limitsApplyScript(p),
        delete: limitsRemoveScript(p),
        ...(args.capacityOk ? { triggers: [args.capacityOk] } : {}),
      },
      { parent: this, dependsOn: args.dependsOn },
    );

    // The account and its home in one remote command (issue 25: one resource and one engine
    // round trip less per user): the account step, then the home step (managed files, links,
    // the launcher), each a verb of the host library. No `update`: a change runs `create` again
    // (both steps converge). The home step has no delete, so the `<user>-home` resource of an
    // older state is removed without running anything on the host.
    this.account = new command.remote.Command(
      `${name}-account`,
      {
        ...common,
        create: accountAndHomeApplyScript(p, args.home),
        delete: accountCutScript(p),
      },
      { parent: this, dependsOn: [...(args.dependsOn ?? []), limits], deleteBeforeReplace: true },
    );

    const vaultGrant = p.grants.vault;
    const vaultParts =
      args.vault && vaultGrant
        ? userVault(this, {
            plan: p,
            grant: vaultGrant,
            shared: args.vault.shared,
            connection: args.connection,
            rotation: args.vault.rotation,
            account: this.account,
          })
        : undefined;

    const units = new command.remote.Command(
      `${name}-units`,
      {
        ...common,
        create: userUnitsScript(p.name, p.grants.timers),
        delete: userUnitsScript(p.name, []),
      },
      { parent: this, dependsOn: [this.account, ...(vaultParts ? [vaultParts.deliver] : [])] },
    );

    const forgejo = args.forgejo ? userForgejo(this, { plan: p, forgejo: args.forgejo, connection: args.connection, account: this.account }) : {};
    this.ready = [
      this.account,
      limits,
      ...(vaultParts ? [vaultParts.deliver] : []),
      units,
      ...[forgejo.credentials, ...(forgejo.repoClones ?? [])].filter((r): r is command.remote.Command => !!r),
    ];
    if (args.kube) {
      const kube = userKube(this, { ...args.kube, plan: p, connection: args.connection, account: this.account });
      this.ready.push(...kube.ready);
      Object.assign(this.dashboardTokens, kube.dashboardTokens);
    }
    this.vaultRole = vaultParts ? vaultParts.roleName : pulumi.output(undefined);
    this.userName = pulumi.output(p.name);
    this.uid = pulumi.output(p.uid);
    this.home = pulumi.output(p.home);
    this.state = pulumi.output(p.state);
    this.groups = pulumi.output(p.groups);
    this.registerOutputs({ userName: this.userName, uid: this.uid, home: this.home, state: this.state, groups: this.groups });
  }
}
