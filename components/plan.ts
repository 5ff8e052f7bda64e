/**
 * Pure planning: roster + role profiles -> what each user gets.
 *
 * No Pulumi and no I/O here. Components turn a `UserPlan` into resources; tests check the
 * plan directly. Every list is sorted so that equal rosters give byte-equal plans.
 */
import { LifecycleState, Overrides, Role, Roster, RosterUser } from "./roster/schema";

export type ForgejoPermission = "none" | "read" | "write" | "admin";
export type KubeTier = "none" | "namespace" | "cluster-admin";

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
}

/** The role defaults of SPEC §2. */
export const DEFAULT_PROFILES: Readonly<Record<Role, RoleProfile>> = {
  admin: {
    groups: [], sudo: true, forgejoPermission: "admin", forgejoSiteAdmin: true,
    pushWhitelist: true, mergeWhitelist: true, kubeTier: "cluster-admin", dashboardNav: false,
    tmuxPersist: true, claudeTokenRenew: true,
  },
  "power-user": {
    groups: [], sudo: false, forgejoPermission: "write", forgejoSiteAdmin: false,
    pushWhitelist: false, mergeWhitelist: false, kubeTier: "none", dashboardNav: false,
    tmuxPersist: true, claudeTokenRenew: true,
  },
  "namespace-owner": {
    groups: [], sudo: false, forgejoPermission: "read", forgejoSiteAdmin: false,
    pushWhitelist: false, mergeWhitelist: false, kubeTier: "namespace", dashboardNav: true,
    tmuxPersist: true, claudeTokenRenew: true,
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
    tokenRenewTimer: `claude-token-renew@${name}.timer`,
    refreshCloneTimer: `workstations-refresh-clone@${name}.timer`,
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
  forgejoUser: string;
  shell: string;
  home: string;
  sshKeys: string[];
  /** Supplementary groups, sorted, including the managed workstation-* groups. */
  groups: string[];
  sudo: boolean;
  /** Linger keeps the user's manager running at boot (needed for user units). */
  linger: boolean;
  forgejo: {
    permission: ForgejoPermission;
    siteAdmin: boolean;
    pushWhitelist: boolean;
    mergeWhitelist: boolean;
    /**
     * Collaborator on the infra repo with `permission` (the repo owner excepted), an access
     * token in ~/.git-credentials and the ~/code clone: active users with a permission.
     * Suspended users lose all three (their Forgejo account stays).
     */
    access: boolean;
  };
  kube: {
    tier: KubeTier;
    /** Owned namespaces: they exist while the owner is active or suspended (never deleted by the program). */
    namespaces: string[];
    dashboardNav: boolean;
    /**
     * Bindings (RoleBindings, ClusterRoleBindings), the dashboard token and the kubeconfig:
     * active users whose tier is not `none`. Suspended users lose all of them; their
     * namespaces and workloads stay.
     */
    access: boolean;
  };
  vault: { policy: string; role: string; path: string; rotation: number };
  units: { tmuxPersist: boolean; claudeTokenRenew: boolean; timers: string[] };
  /** Files in the home the program manages, with their modes. */
  files: ManagedFile[];
}

export interface ManagedFile {
  path: string;
  kind: "file" | "symlink" | "guarded-mirror" | "ensure-mode";
  mode?: string;
  target?: string;
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
}

/** Shared base directory for ~/.claude symlinks (skills, rules). */
export const CLAUDE_BASE = "/usr/local/share/workstations/claude-base";
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
  const active = u.state === "active";
  const writer = p.forgejoPermission === "write" || p.forgejoPermission === "admin";
  const claudeTokenRenew = p.claudeTokenRenew;
  const forgejoAccess = active && p.forgejoPermission !== "none";
  const timers = [
    ...(active && claudeTokenRenew ? [names.tokenRenewTimer] : []),
    // The ~/code refresh; its unit is skipped while there is no clone (no Forgejo config).
    ...(forgejoAccess ? [names.refreshCloneTimer] : []),
  ];
  return {
    name: u.name,
    uid: u.uid,
    gid: u.uid,
    role: u.role,
    state: u.state,
    email: u.email,
    forgejoUser: u.forgejo,
    shell: u.shell,
    home: names.home,
    sshKeys: [...u.sshKeys],
    groups: sorted([USERS_GROUP, ...p.groups, ...u.groups]),
    sudo: p.sudo,
    linger: active && (claudeTokenRenew || p.tmuxPersist),
    forgejo: {
      permission: p.forgejoPermission,
      siteAdmin: p.forgejoSiteAdmin,
      // Whitelisted users must be write collaborators or Forgejo drops them silently.
      pushWhitelist: active && writer && p.pushWhitelist,
      mergeWhitelist: active && writer && p.mergeWhitelist,
      access: forgejoAccess,
    },
    kube: {
      tier: p.kubeTier,
      namespaces: sorted(u.namespaces),
      dashboardNav: p.dashboardNav,
      access: active && p.kubeTier !== "none",
    },
    vault: { policy: names.vaultPolicy, role: names.vaultRole, path: names.vaultPath, rotation: u.credentialRotation },
    units: { tmuxPersist: p.tmuxPersist, claudeTokenRenew, timers },
    files: [
      ...CLAUDE_BASE_LINKS.map((l): ManagedFile => ({ path: `${names.home}/.claude/${l}`, kind: "symlink", target: `${CLAUDE_BASE}/${l}` })),
      { path: `${names.home}/.claude/settings.json`, kind: "ensure-mode", mode: "0600" },
      { path: `${names.home}/.codex/AGENTS.md`, kind: "guarded-mirror", mode: "0644" },
      { path: `${names.home}/start-claude.sh`, kind: "file", mode: "0755" },
    ],
  };
}

/** Roster -> plan. Pure; the roster is assumed valid (see roster/load.ts). */
export function planRoster(roster: Roster, profiles: Readonly<Record<Role, RoleProfile>> = DEFAULT_PROFILES): Plan {
  const users = roster.users.filter((u) => u.state !== "offboarded").map((u) => planUser(u, profiles));
  const offboarded = roster.users
    .filter((u) => u.state === "offboarded")
    .map((u): OffboardedPlan => ({ name: u.name, uid: u.uid, home: derivedNames(u.name).home, ...(u.purge ? { purge: { ...u.purge } } : {}) }));
  const namespaces: Record<string, string> = {};
  for (const u of users) for (const ns of u.kube.namespaces) namespaces[ns] = u.name;
  const admins = users.filter((u) => u.role === "admin" && u.state === "active");
  return {
    users,
    offboarded,
    reservedUids: roster.users.map((u) => u.uid).sort((a, b) => a - b),
    admins: admins.map((u) => u.name),
    adminForgejoUsers: sorted(admins.map((u) => u.forgejoUser)),
    branchProtection: {
      branch: "master",
      pushWhitelist: sorted(users.filter((u) => u.forgejo.pushWhitelist).map((u) => u.forgejoUser)),
      mergeWhitelist: sorted(users.filter((u) => u.forgejo.mergeWhitelist).map((u) => u.forgejoUser)),
    },
    namespaces,
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
  const withKeys = roster.users.map((u, i) => ({ u, i })).filter(({ u }) => u.state === "active" && u.sshKeys.length > 0);
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
