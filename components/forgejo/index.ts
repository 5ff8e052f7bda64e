/**
 * Forgejo access from the roster (SPEC §3.3, §3.7; README "Forgejo"), as the program uses it:
 *
 * - `forgejoAccess(config, plan)`: the preflight (one line and nothing registered when the
 *   server, the credential, the repo or a roster user is wrong), then a holder the users'
 *   components and the branch protection share.
 * - `userForgejo(parent, …)`: one user's collaborator, access token, `~/.git-credentials` and
 *   `~/code` clone, exactly as the plan grants them (`plan.grants.forgejo`).
 * - `ForgejoAccess.protect()`: master's protection with the plan's whitelists, written after
 *   every collaborator (`dependsOn`).
 *
 * Grants are decided in components/plan.ts only; this module turns them into resources.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { commandConnection, HostConnection } from "../connection";
import { Plan, UserPlan } from "../plan";
import { credentialLine } from "../scripts/clone";
import { cloneScript, gitCredentialsAndCloneScript, gitCredentialsRemoveScript } from "../scripts/hostLib";
import { PreflightInput, PreflightResult } from "./api";
import { forgejoIdentities, runPreflight } from "./preflight";
import { ForgejoAccessToken, ForgejoBranchProtection, ForgejoCollaborator } from "./provider";

export { ForgejoAccessToken, ForgejoBranchProtection, ForgejoCollaborator, GIT_TOKEN_SCOPES } from "./provider";

/** The stack's Forgejo settings (components/config.ts reads them). */
export interface ForgejoConfig {
  /** URL the Pulumi runner reaches (the provider and the preflight use it). */
  url: string;
  /** URL the devvm reaches (the clone and ~/.git-credentials use it). */
  urlFromHost: string;
  repo: { owner: string; name: string };
  adminUser: string;
  /**
   * Secret; absent when FORGEJO_ADMIN_PASSWORD is set in the environment. Not passed to any
   * resource: the preflight and the provider (its `configure`) read it themselves.
   */
  adminPassword?: pulumi.Output<string>;
}

export const FORGEJO_OFF_MESSAGE =
  "Forgejo: off (workstations:forgejoUrl is not set): no collaborators, master protection, access tokens or ~/code clones are managed";

export type Preflight = (input: PreflightInput) => PreflightResult;
let preflight: Preflight = runPreflight;

/** Tests under mocks replace the network check (there is no server behind the mocks). */
export function setForgejoPreflightForTests(p: Preflight | undefined): void {
  preflight = p ?? runPreflight;
}

/** Forgejo users the program grants something to: each must exist on the server. */
export function grantedForgejoUsers(plan: Plan): string[] {
  return [
    ...new Set([
      ...plan.users.filter((u) => u.grants.forgejo).map((u) => u.forgejoUser),
      ...plan.branchProtection.pushWhitelist,
      ...plan.branchProtection.mergeWhitelist,
    ]),
  ].sort();
}

/** The admin password as plain text for the preflight (config secret, else the environment). */
function adminPasswordPlain(): string | undefined {
  return pulumi.runtime.getConfig("workstations:forgejoAdminPassword") || process.env.FORGEJO_ADMIN_PASSWORD || undefined;
}

/** Runs the preflight (throws a RunError: one line, nothing registered) and returns the holder. */
export function forgejoAccess(config: ForgejoConfig, plan: Plan): ForgejoAccess {
  const password = adminPasswordPlain();
  if (!password) throw new pulumi.RunError("Forgejo: no admin password: set FORGEJO_ADMIN_PASSWORD or the secret workstations:forgejoAdminPassword");
  const r = preflight({
    url: config.url,
    repo: `${config.repo.owner}/${config.repo.name}`,
    adminUser: config.adminUser,
    adminPassword: password,
    users: grantedForgejoUsers(plan),
    identities: forgejoIdentities(plan),
  });
  if (!r.ok) throw new pulumi.RunError(`${r.message}; nothing was applied`);
  pulumi.log.info(r.message);
  return new ForgejoAccess(config, plan);
}

/** Shared by the users' components and master's protection. Not a resource. */
export class ForgejoAccess {
  /** Every collaborator created so far: the protection depends on all of them. */
  readonly collaborators: ForgejoCollaborator[] = [];
  readonly repo: string;

  constructor(
    readonly config: ForgejoConfig,
    readonly plan: Plan,
  ) {
    this.repo = `${config.repo.owner}/${config.repo.name}`;
  }

  /** True for the repo's owner, who is no collaborator (owners have every right already). */
  isOwner(forgejoUser: string): boolean {
    return forgejoUser.toLowerCase() === this.config.repo.owner.toLowerCase();
  }

  /** The clone URL of `owner/name` (default: the infra repo) as the devvm sees it. */
  cloneUrl(repo = this.repo): string {
    return `${this.config.urlFromHost.replace(/\/+$/, "")}/${repo}.git`;
  }

  /** Master's protection with the plan's whitelists, after every collaborator. */
  protect(parent?: pulumi.Resource): ForgejoBranchProtection {
    const bp = this.plan.branchProtection;
    return new ForgejoBranchProtection(
      "forgejo-master-protection",
      {
        url: this.config.url,
        repo: this.repo,
        branch: bp.branch,
        pushWhitelist: bp.pushWhitelist,
        mergeWhitelist: bp.mergeWhitelist,
      },
      { parent, dependsOn: [...this.collaborators] },
    );
  }
}

/** What UserWorkstation needs for one user. */
export interface UserForgejoArgs {
  access: ForgejoAccess;
  /** Global rotation counter (workstations:credentialRotation); combined with the roster's per-user one. */
  rotation: string;
}

export interface UserForgejoParts {
  collaborator?: ForgejoCollaborator;
  token?: ForgejoAccessToken;
  credentials?: command.remote.Command;
  /** The workspace layout's further repos (`repos`), one clone each. */
  repoClones?: command.remote.Command[];
}

/** The access token's name: carries the rotation, so bumping it replaces (and revokes) the token. */
export function tokenName(globalRotation: string, userRotation: number): string {
  return `workstations-${`${globalRotation}.${userRotation}`.replace(/[^A-Za-z0-9._-]/g, "-")}`.slice(0, 64);
}

/**
 * One user's Forgejo resources as children of `parent` (their UserWorkstation). Only for
 * `plan.grants.forgejo` (active users with a permission); a suspended or offboarded user has
 * none, so the engine deletes them: collaboration removed, token revoked, its line removed
 * from ~/.git-credentials. The clone in ~/code stays (the program never deletes it), locked.
 */
export function userForgejo(
  parent: pulumi.Resource,
  a: { plan: UserPlan; forgejo: UserForgejoArgs; connection: HostConnection; account: pulumi.Resource },
): UserForgejoParts {
  const p = a.plan;
  const grant = p.grants.forgejo;
  if (!grant) return {};
  const acc = a.forgejo.access;
  const cfg = acc.config;
  let collaborator: ForgejoCollaborator | undefined;
  if (!acc.isOwner(p.forgejoUser)) {
    collaborator = new ForgejoCollaborator(
      `${p.name}-forgejo-collaborator`,
      {
        url: cfg.url,
        repo: acc.repo,
        user: p.forgejoUser,
        permission: grant.permission,
      },
      { parent },
    );
    acc.collaborators.push(collaborator);
  }
  const token = new ForgejoAccessToken(
    `${p.name}-forgejo-token`,
    {
      url: cfg.url,
      user: p.forgejoUser,
      tokenName: tokenName(a.forgejo.rotation, p.credentialRotation),
    },
    { parent },
  );
  const connection = commandConnection(a.connection);
  const line = pulumi.secret(token.token.apply((t) => credentialLine(cfg.urlFromHost, p.forgejoUser, t)));
  // The token's line in ~/.git-credentials, then the clone of the infra repo into ~/code, in
  // one remote command (issue 25: one resource less per user). The clone step leaves an
  // existing clone alone, so running it again on every change of the line (a new token) is a
  // no-op; it has no delete, so the `<user>-code-clone` resource of an older state is removed
  // without running anything on the host.
  const deliver = gitCredentialsAndCloneScript(p, cfg.urlFromHost, acc.cloneUrl(), p.code.infraDir, p.code.adoptDir);
  const credentials = new command.remote.Command(
    `${p.name}-git-credentials`,
    {
      connection,
      addPreviousOutputInEnv: false,
      create: deliver,
      update: deliver,
      delete: gitCredentialsRemoveScript(p, cfg.urlFromHost),
      stdin: line,
    },
    // Replaced only by hand (`pulumi up --replace`, to clone again): the old line is removed
    // before the new command writes it, not after.
    { parent, dependsOn: [a.account, ...(collaborator ? [collaborator] : [])], additionalSecretOutputs: ["stdin"], deleteBeforeReplace: true },
  );
  // The workspace's further repos, beside the infra clone (the user's own access to them: the
  // program grants none; a repo they cannot read fails that clone with Forgejo's answer).
  // Create only: a change runs the same script, which leaves an existing clone alone; no delete.
  const repoClones = p.code.repos.map(
    (r) =>
      new command.remote.Command(
        `${p.name}-code-clone-${r.dir.slice("code/".length)}`,
        { connection, addPreviousOutputInEnv: false, create: cloneScript(p, acc.cloneUrl(r.repo), r.dir, "") },
        { parent, dependsOn: [credentials] },
      ),
  );
  return { collaborator, token, credentials, ...(repoClones.length ? { repoClones } : {}) };
}
