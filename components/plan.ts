/**
 * Pure planning: roster + role profiles -> what each user gets, decided here once (`grants`).
 *
 * No Pulumi and no I/O here. Components turn a `UserPlan` into resources; tests check the
 * plan directly. Every list is sorted so that equal rosters give byte-equal plans.
 */
import { CLAUDE_BASE, UNITS } from "./hostContract";
import { planLimits, UserLimits } from "./plan/limits";
import { isRestrictedKey, LifecycleState, Overrides, Role, Roster, RosterUser } from "./roster/schema";
import { planWeb, WebGrant, WebPlan } from "./plan/web";
import { CodePlan, planCode } from "./plan/code";

export type ForgejoPermission = "none" | "read" | "write" | "admin";
/** `read-only`: the team's power-user tier, a cluster-wide read-only ClusterRole (README "Kubernetes"). */
export type KubeTier = "none" | "namespace" | "read-only" | "cluster-admin";
/** How the renewal agent keeps a user's Claude login (roster `claudeLogin`; README "Claude logins"). */
export type ClaudeLogin = "rotating" | "setup-token";

/** What a role grants before per-user overrides. */
export interface RoleProfile {
  /** Supplementary groups (besides the managed workstation-* groups). */
  groups: string[];
  sudo: boolean;
  forgejoPermission: ForgejoPermission;
  forgejoSiteAdmin: boolean;
  pushWhitelist: boolean;
  mergeWhitelist: boolean;
  kubeTier: KubeTier;
  /** Bind the read-only `dashboard-nav-readonly` ClusterRole. */
  dashboardNav: boolean;
  tmuxPersist: boolean;
  claudeTokenRenew: boolean;
  /** The agent's mode for the Claude login (with `claudeTokenRenew`). */
  claudeLogin: ClaudeLogin;
  /** A T3 Code server (`t3-serve@<user>.service`) on a sticky port (README "Web access"). */
  t3: boolean;
}

/** The role defaults of SPEC §2. */
export const DEFAULT_PROFILES: Readonly<Record<Role, RoleProfile>> = {
  admin: {
    groups: [],
    sudo: true,
    forgejoPermission: "admin",
    forgejoSiteAdmin: true,
    pushWhitelist: true,
    mergeWhitelist: true,
    kubeTier: "cluster-admin",
    dashboardNav: false,
    tmuxPersist: true,
    claudeTokenRenew: true,
    claudeLogin: "rotating",
    t3: true,
  },
  "power-user": {
    groups: [],
    sudo: false,
    forgejoPermission: "write",
    forgejoSiteAdmin: false,
    pushWhitelist: false,
    mergeWhitelist: false,
    kubeTier: "none",
    dashboardNav: false,
    tmuxPersist: true,
    claudeTokenRenew: true,
    claudeLogin: "rotating",
    t3: true,
  },
  "namespace-owner": {
    groups: [],
    sudo: false,
    forgejoPermission: "read",
    forgejoSiteAdmin: false,
    pushWhitelist: false,
    mergeWhitelist: false,
    kubeTier: "namespace",
    dashboardNav: true,
    tmuxPersist: true,
    claudeTokenRenew: true,
    claudeLogin: "rotating",
    t3: true,
  },
};

/** Group every managed user is in. */
export const USERS_GROUP = "workstation-users";

/** Names derived from a user name, used by several components and the host scripts. */
export function derivedNames(name: string) {
  return {
    home: `/home/${name}`,
    vaultPolicy: `claude-renew-${name}`,
    vaultRole: `claude-renew-${name}`,
    vaultPath: `users/${name}`,
    tokenRenewTimer: UNITS.tokenRenewTimer(name),
    refreshCloneTimer: UNITS.refreshCloneTimer(name),
    dashboardServiceAccount: `dashboard-${name}`,
  };
}

export interface UserPlan {
  name: string;
  uid: number;
  /** Primary group id; equals uid (a per-user group of the same name). */
  gid: number;
  role: Role;
  state: Exclude<LifecycleState, "offboarded">;
  email: string;
  /** The SSO identity (authentik username) the web surfaces map to this account: the roster's `sso`, else `name`. */
  sso: string;
  forgejoUser: string;
  /** The email the Forgejo account `forgejoUser` must have: the roster's `forgejoEmail`, else `email` (checked by the Forgejo preflight). */
  forgejoEmail: string;
  /** The Kubernetes identity (OIDC email claim): the roster's `k8sUser`, else `email`. */
  kubeUser: string;
  shell: string;
  home: string;
  /** Supplementary groups, sorted, including the managed workstation-* groups (kept while suspended). */
  groups: string[];
  /** Owned namespaces: they exist while the owner is active or suspended (never deleted by the program). */
  namespaces: string[];
  /** The roster's per-user rotation counter (Vault secret_id, Forgejo token). */
  credentialRotation: number;
  /** Take over an existing account this program did not create (roster `adopt`). */
  adopt: boolean;
  /** With `adopt`: remove the groups and home mode this program did not grant (roster `tighten`). */
  tighten: boolean;
  /** Memory, swap, CPU and task limits of the user's slice and panes (kept while suspended). */
  limits: UserLimits;
  /** Where the user's clones live (roster `codeLayout`, `repos`); cloned only with `grants.forgejo`. */
  code: CodePlan;
  /**
   * The role's profile after the user's overrides: what this entry would hold if active.
   * For reports only ("tier namespace, no binding while suspended"); nothing applies it.
   */
  profile: RoleProfile;
  /** What the user holds in their state. The one place a grant is decided: apply these. */
  grants: Grants;
}

/**
 * A user's effective grants for their lifecycle state. Script generators, components and
 * the access report read only these (never `state` or `profile`): a suspended user's grants
 * are already the cut (no login, keys, sudo, linger, timers, Vault, Forgejo or bindings).
 */
export interface Grants {
  /** The account can log in (not expired, password usable): active users. */
  login: boolean;
  /** The authorized_keys installed (empty without login). */
  sshKeys: string[];
  /** A passwordless sudoers entry. */
  sudo: boolean;
  /** Linger keeps the user's manager running at boot (needed for user units). */
  linger: boolean;
  /** User timers enabled, sorted. */
  timers: string[];
  /** Sessions saved and restored by tmux-persist. */
  tmuxPersist: boolean;
  /** Claude token renewal (its timer is in `timers`). */
  claudeTokenRenew: boolean;
  /** The agent's mode (README "Claude logins"); null without `claudeTokenRenew`. */
  claudeLogin: ClaudeLogin | null;
  /** The renewal's Vault policy, AppRole and secret_id (its backup path); null = none. */
  vault: VaultGrant | null;
  /** Collaborator on the infra repo (the owner excepted), access token, ~/.git-credentials and the ~/code clone; null = none. */
  forgejo: ForgejoGrant | null;
  /** Kubernetes bindings, dashboard tokens and ~/.kube/config; null = none. */
  kube: KubeGrant | null;
  /** The web terminal as `sso`, act-as for admins, a T3 Code server (plan/web.ts); null = none. */
  web: WebGrant | null;
}

export interface VaultGrant {
  policy: string;
  role: string;
  /** Path under the KV mount, e.g. `users/alice`. */
  path: string;
}

export interface ForgejoGrant {
  permission: Exclude<ForgejoPermission, "none">;
  /** Reported only: site-admin status is managed in Forgejo itself. */
  siteAdmin: boolean;
  /** Whitelisted users are write collaborators (Forgejo drops others silently). */
  pushWhitelist: boolean;
  mergeWhitelist: boolean;
}

export interface KubeGrant {
  tier: Exclude<KubeTier, "none">;
  /** Namespaces with an `admin` RoleBinding for the user and a dashboard ServiceAccount token. */
  namespaceAdmin: string[];
  /** `dashboard-nav-readonly` for the user (and their dashboard ServiceAccounts). */
  dashboardNav: boolean;
  /** `cluster-admin` ClusterRoleBinding. */
  clusterAdmin: boolean;
  /** A ClusterRoleBinding to the read-only ClusterRole (tier `read-only`). */
  clusterReadOnly: boolean;
  /** The kubeconfig's default namespace, if any. */
  defaultNamespace?: string;
}

/** An offboarded user: nothing is created; a purge runs only with approval. */
export interface OffboardedPlan {
  name: string;
  uid: number;
  home: string;
  purge?: { approvedBy: string; approvedOn: string; reason?: string };
}

export interface Plan {
  /** Active and suspended users, in roster order. */
  users: UserPlan[];
  offboarded: OffboardedPlan[];
  /** Every uid in the roster, offboarded included: never handed out again. */
  reservedUids: number[];
  /** Roster names of active admins. */
  admins: string[];
  /** Forgejo users of active admins (used by CI to tell admin pushes apart). */
  adminForgejoUsers: string[];
  branchProtection: { branch: "master"; pushWhitelist: string[]; mergeWhitelist: string[] };
  /** Namespace -> owning user, for active and suspended owners. */
  namespaces: Record<string, string>;
  /** Who the web surfaces let in (the identity files, T3 servers): active users only. */
  web: WebPlan;
}

/** Shared base directory for ~/.claude symlinks (skills, rules). */
export { CLAUDE_BASE };
export const CLAUDE_BASE_LINKS = ["skills", "rules"] as const;

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

/** Applies overrides to a role profile. */
export function effectiveProfile(role: Role, overrides: Overrides, profiles: Readonly<Record<Role, RoleProfile>> = DEFAULT_PROFILES): RoleProfile {
  const base = profiles[role];
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) as Partial<RoleProfile>;
  return { ...base, ...defined };
}

export function planUser(u: RosterUser, profiles: Readonly<Record<Role, RoleProfile>> = DEFAULT_PROFILES): UserPlan {
  if (u.state === "offboarded") throw new Error(`planUser: ${u.name} is offboarded`);
  const p = effectiveProfile(u.role, u.overrides, profiles);
  const names = derivedNames(u.name);
  const namespaces = sorted(u.namespaces);
  return {
    name: u.name,
    uid: u.uid,
    gid: u.uid,
    role: u.role,
    state: u.state,
    email: u.email,
    sso: u.sso ?? u.name,
    forgejoUser: u.forgejo,
    forgejoEmail: u.forgejoEmail ?? u.email,
    kubeUser: u.k8sUser ?? u.email,
    shell: u.shell,
    home: names.home,
    groups: sorted([USERS_GROUP, ...p.groups, ...u.groups]),
    namespaces,
    credentialRotation: u.credentialRotation,
    adopt: u.adopt,
    tighten: u.tighten,
    limits: planLimits(u.role, u.limits),
    code: planCode(u),
    profile: p,
    grants: u.state === "active" ? activeGrants(u, p, namespaces) : SUSPENDED_GRANTS,
  };
}

/** A suspended user holds nothing (the reversible cut); account, home, groups and namespaces stay. */
const SUSPENDED_GRANTS: Readonly<Grants> = Object.freeze({
  login: false,
  sshKeys: [],
  sudo: false,
  linger: false,
  timers: [],
  tmuxPersist: false,
  claudeTokenRenew: false,
  claudeLogin: null,
  vault: null,
  forgejo: null,
  kube: null,
  web: null,
});

function activeGrants(u: RosterUser, p: RoleProfile, namespaces: string[]): Grants {
  const names = derivedNames(u.name);
  const writer = p.forgejoPermission === "write" || p.forgejoPermission === "admin";
  const forgejo: ForgejoGrant | null =
    p.forgejoPermission === "none"
      ? null
      : {
          permission: p.forgejoPermission,
          siteAdmin: p.forgejoSiteAdmin,
          pushWhitelist: writer && p.pushWhitelist,
          mergeWhitelist: writer && p.mergeWhitelist,
        };
  const kube: KubeGrant | null =
    p.kubeTier === "none"
      ? null
      : {
          tier: p.kubeTier,
          namespaceAdmin: namespaces,
          dashboardNav: p.dashboardNav,
          clusterAdmin: p.kubeTier === "cluster-admin",
          clusterReadOnly: p.kubeTier === "read-only",
          ...(p.kubeTier === "namespace" && namespaces.length ? { defaultNamespace: namespaces[0] } : {}),
        };
  return {
    login: true,
    sshKeys: [...u.sshKeys],
    sudo: p.sudo,
    linger: p.claudeTokenRenew || p.tmuxPersist,
    timers: sorted([
      ...(p.claudeTokenRenew ? [names.tokenRenewTimer] : []),
      // The ~/code refresh; its unit is skipped while there is no clone (no Forgejo config).
      ...(forgejo ? [names.refreshCloneTimer] : []),
    ]),
    tmuxPersist: p.tmuxPersist,
    claudeTokenRenew: p.claudeTokenRenew,
    claudeLogin: p.claudeTokenRenew ? p.claudeLogin : null,
    vault: p.claudeTokenRenew ? { policy: names.vaultPolicy, role: names.vaultRole, path: names.vaultPath } : null,
    forgejo,
    kube,
    web: { sso: u.sso ?? u.name, actAs: u.role === "admin", t3: p.t3 },
  };
}

/** Roster -> plan. Pure; the roster is assumed valid (see roster/load.ts). */
export function planRoster(roster: Roster, profiles: Readonly<Record<Role, RoleProfile>> = DEFAULT_PROFILES): Plan {
  const users = roster.users.filter((u) => u.state !== "offboarded").map((u) => planUser(u, profiles));
  const offboarded = roster.users
    .filter((u) => u.state === "offboarded")
    .map((u): OffboardedPlan => ({ name: u.name, uid: u.uid, home: derivedNames(u.name).home, ...(u.purge ? { purge: { ...u.purge } } : {}) }));
  const namespaces: Record<string, string> = {};
  for (const u of users) for (const ns of u.namespaces) namespaces[ns] = u.name;
  const admins = users.filter((u) => u.role === "admin" && u.state === "active");
  return {
    users,
    offboarded,
    reservedUids: roster.users.map((u) => u.uid).sort((a, b) => a - b),
    admins: admins.map((u) => u.name),
    adminForgejoUsers: sorted(admins.map((u) => u.forgejoUser)),
    branchProtection: {
      branch: "master",
      pushWhitelist: sorted(users.filter((u) => u.grants.forgejo?.pushWhitelist).map((u) => u.forgejoUser)),
      mergeWhitelist: sorted(users.filter((u) => u.grants.forgejo?.mergeWhitelist).map((u) => u.forgejoUser)),
    },
    namespaces,
    web: planWeb(users),
  };
}

/** A roster the schema accepts but the plan refuses; `message` says what was expected (without "expected"). */
export interface PlanProblem {
  path: (string | number)[];
  message: string;
}

/**
 * Rules decided by the plan rather than the schema, checked by `parseRoster` once the schema
 * passed. Today: some active user ends up with sudo (role default, then `overrides.sudo`)
 * and at least one ssh key, the only way back into the host. When an `overrides.sudo: false`
 * took that away, the problem points at the last such override in roster order; otherwise
 * at `users`.
 */
export function planProblems(roster: Roster, profiles: Readonly<Record<Role, RoleProfile>> = DEFAULT_PROFILES): PlanProblem[] {
  const problems: PlanProblem[] = [];
  // a forced-command key gives no shell: it is no way back in
  const withKeys = roster.users.map((u, i) => ({ u, i })).filter(({ u }) => u.state === "active" && u.sshKeys.some((k) => !isRestrictedKey(k)));
  if (!withKeys.some(({ u }) => effectiveProfile(u.role, u.overrides, profiles).sudo)) {
    const what = "an active user with sudo and an ssh key (the only way back into the host)";
    const removed = withKeys.filter(({ u }) => profiles[u.role].sudo && u.overrides.sudo === false).pop();
    problems.push(
      removed
        ? { path: ["users", removed.i, "overrides", "sudo"], message: `${what}: this override takes sudo from ${removed.u.name}, the last one who had it` }
        : { path: ["users"], message: `${what}: none has both` },
    );
  }
  return problems;
}
