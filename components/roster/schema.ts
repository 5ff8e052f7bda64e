/**
 * The roster schema: the one definition every roster type comes from.
 *
 * Field-level rules live on the fields; rules that look across entries (duplicates,
 * namespace ownership, purge approval) live in `rosterSchema.superRefine` so that every
 * problem is reported with a path, and from the path a `file:line:col`.
 */
import { z } from "zod";

/** Roles, see SPEC §2. */
export const ROLES = ["admin", "power-user", "namespace-owner"] as const;
export type Role = (typeof ROLES)[number];

/** Lifecycle states, see SPEC §3.1. */
export const STATES = ["active", "suspended", "offboarded"] as const;
export type LifecycleState = (typeof STATES)[number];

/** Lowest and highest uid a roster user may pin. Below is Debian's system range; above
 * are the 60000-64999 reserved block, nobody (65534) and friends. */
export const MIN_UID = 1000;
export const MAX_UID = 59999;

/** Names that belong to the system or are too easy to confuse with it. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([
  "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
  "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "sshd",
  "messagebus", "systemd-network", "systemd-resolve", "systemd-timesync",
  "systemd-journal", "systemd-coredump", "polkitd", "postfix", "ntp", "syslog", "_apt",
  "admin", "administrator", "sudo", "wheel", "adm", "staff", "users", "operator",
  "git", "forgejo", "gitea", "vault", "openbao", "tmux", "claude", "ubuntu", "debian",
]);

/** Kubernetes namespaces no user may own. */
export const RESERVED_NAMESPACES: ReadonlySet<string> = new Set([
  "default", "kube-system", "kube-public", "kube-node-lease",
]);

const SSH_KEY_TYPES = [
  "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
] as const;

/** True when `key` is one OpenSSH public key line whose base64 blob names the same type. */
export function isSshPublicKey(key: string): boolean {
  if (/[\r\n\0]/.test(key)) return false;
  const m = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: [^\r\n]*)?$/.exec(key);
  if (!m) return false;
  const [, type, blob] = m;
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type)) return false;
  const raw = Buffer.from(blob, "base64");
  if (raw.length < 4) return false;
  const n = raw.readUInt32BE(0);
  return raw.length >= 4 + n && raw.subarray(4, 4 + n).toString("latin1") === type;
}

const unixName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,30}$/, {
    message: "a unix name: lowercase letter first, then up to 30 of [a-z0-9_-]",
  })
  .refine((n) => !RESERVED_NAMES.has(n), { message: "a name that is not reserved for the system" });

/** Groups that would grant root-equivalent access; sudo comes from the role, never from `groups`. */
export const PRIVILEGED_GROUPS: ReadonlySet<string> = new Set(["root", "sudo", "wheel", "shadow", "disk", "kmem", "adm"]);

const groupName = z
  .string()
  .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { message: "a group name: lowercase letter or _ first, then up to 31 of [a-z0-9_-]" })
  .refine((g) => !PRIVILEGED_GROUPS.has(g) && !g.startsWith("workstation-"), {
    message: "an unprivileged group (sudo comes from the role or overrides.sudo; workstation-* groups are managed)",
  });

const namespaceName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, {
    message: "a Kubernetes namespace name (DNS-1123 label, at most 63 chars)",
  })
  .refine((n) => !RESERVED_NAMESPACES.has(n) && !n.startsWith("kube-"), {
    message: "a namespace that is not a Kubernetes system namespace",
  });

/** Per-user overrides of the role defaults. Every field is optional. */
export const overridesSchema = z.strictObject({
  /** Passwordless sudo on the host. */
  sudo: z.boolean().optional(),
  /** Member of the master push whitelist (requires write access). */
  pushWhitelist: z.boolean().optional(),
  /** Member of the master merge whitelist (requires write access). */
  mergeWhitelist: z.boolean().optional(),
  /** Collaborator permission on the infra repo. */
  forgejoPermission: z.enum(["none", "read", "write", "admin"]).optional(),
  /** Snapshot and restore this user's tmux sessions (SPEC §3.4). */
  tmuxPersist: z.boolean().optional(),
  /** Run the Claude token renewal agent for this user (SPEC §3.5). */
  claudeTokenRenew: z.boolean().optional(),
  /** Kubernetes tier for the generated kubeconfig. */
  kubeTier: z.enum(["none", "namespace", "cluster-admin"]).optional(),
});
export type Overrides = z.infer<typeof overridesSchema>;

/** The explicit approval that lets an offboarded user's home and data be purged. */
export const purgeSchema = z.strictObject({
  /** The admin (roster name) who approved the purge. */
  approvedBy: unixName,
  /** When it was approved, YYYY-MM-DD. */
  approvedOn: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, { message: "a date YYYY-MM-DD" }),
  /** Optional ticket or reason. */
  reason: z.string().max(500).optional(),
});

/** One roster entry. */
export const userSchema = z.strictObject({
  /** Unix account name. */
  name: unixName,
  /** Pinned uid (also the primary gid). Never reused: keep offboarded entries. */
  uid: z
    .number()
    .int({ message: "an integer uid" })
    .min(MIN_UID, { message: `a uid of at least ${MIN_UID} (below is the system range)` })
    .max(MAX_UID, { message: `a uid of at most ${MAX_UID} (above is reserved)` }),
  role: z.enum(ROLES),
  /** Enterprise email: the user's Claude identity. */
  email: z.email({ message: "an email address" }),
  /** Forgejo username. */
  forgejo: z
    .string()
    .regex(/^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,38}[A-Za-z0-9])?$/, { message: "a Forgejo username" }),
  /** OpenSSH public keys, one per line of authorized_keys. */
  sshKeys: z
    .array(z.string().refine(isSshPublicKey, { message: "an OpenSSH public key line (type, base64 blob, optional comment)" }))
    .default([]),
  /** Login shell. */
  shell: z.enum(["/bin/bash", "/bin/sh", "/usr/bin/zsh", "/usr/bin/fish"]).default("/bin/bash"),
  /** Extra supplementary groups on top of the role's. */
  groups: z.array(groupName).default([]),
  /** Namespaces this user owns (namespace-owners only). */
  namespaces: z.array(namespaceName).default([]),
  overrides: overridesSchema.default({}),
  state: z.enum(STATES).default("active"),
  /** Bump to rotate this user's machine credentials (the Vault AppRole secret_id). */
  credentialRotation: z.number().int().min(0).default(0),
  /** Only for offboarded users: the approval for the destructive purge. */
  purge: purgeSchema.optional(),
});
export type RosterUser = z.infer<typeof userSchema>;

/** The whole roster file. */
export const rosterSchema = z
  .strictObject({
    version: z.literal(1),
    users: z.array(userSchema),
  })
  .superRefine(crossEntryChecks, {
    // Run even when some fields failed, so every problem is reported at once.
    when: (payload) => isRecord(payload.value) && Array.isArray(payload.value.users),
  });

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Rules across entries. Written against possibly-invalid data: every access is checked. */
function crossEntryChecks(rosterIn: unknown, ctx: z.RefinementCtx): void {
  const users = (isRecord(rosterIn) && Array.isArray(rosterIn.users) ? rosterIn.users : []).map((u) =>
    isRecord(u) ? u : {},
  );
  const str = (v: unknown): string | undefined => (typeof v === "string" || typeof v === "number" ? String(v) : undefined);
  const nameOf = (i: number) => str(users[i].name) ?? `#${i}`;
  const seen = (field: "name" | "uid" | "forgejo" | "email") => {
    const first = new Map<string, number>();
    users.forEach((u, i) => {
      const raw = str(u[field]);
      if (raw === undefined) return;
      const key = field === "forgejo" || field === "email" ? raw.toLowerCase() : raw;
      const prev = first.get(key);
      if (prev === undefined) first.set(key, i);
      else
        ctx.addIssue({
          code: "custom",
          path: ["users", i, field],
          message: `a unique ${field}: ${JSON.stringify(u[field])} is already used by users[${prev}] (${nameOf(prev)})`,
        });
    });
  };
  seen("name");
  seen("uid");
  seen("forgejo");
  seen("email");

  const owner = new Map<string, string>();
  users.forEach((u, i) => {
    const namespaces = Array.isArray(u.namespaces) ? u.namespaces : [];
    const state = str(u.state) ?? "active";
    const role = str(u.role);
    if (role === "namespace-owner" && namespaces.length === 0)
      ctx.addIssue({ code: "custom", path: ["users", i, "namespaces"], message: "at least one namespace for a namespace-owner" });
    if (role !== undefined && (ROLES as readonly string[]).includes(role) && role !== "namespace-owner" && namespaces.length > 0)
      ctx.addIssue({ code: "custom", path: ["users", i, "namespaces"], message: `no namespaces: only namespace-owners own namespaces (role is ${role})` });
    namespaces.forEach((nsRaw, j) => {
      const ns = str(nsRaw);
      if (ns === undefined || state === "offboarded") return;
      const prev = owner.get(ns);
      if (prev !== undefined)
        ctx.addIssue({ code: "custom", path: ["users", i, "namespaces", j], message: `a namespace with one owner: ${ns} is already owned by ${prev}` });
      else owner.set(ns, nameOf(i));
    });
    if (isRecord(u.purge)) {
      if (state !== "offboarded")
        ctx.addIssue({ code: "custom", path: ["users", i, "purge"], message: `no purge approval unless state is offboarded (state is ${state})` });
      const by = str(u.purge.approvedBy);
      const approver = users.find((a) => str(a.name) === by);
      if (!approver || str(approver.role) !== "admin" || (str(approver.state) ?? "active") !== "active")
        ctx.addIssue({ code: "custom", path: ["users", i, "purge", "approvedBy"], message: `an active admin in this roster (${by} is not)` });
      else if (by === str(u.name))
        ctx.addIssue({ code: "custom", path: ["users", i, "purge", "approvedBy"], message: "another admin: users cannot approve their own purge" });
    }
    const ov = isRecord(u.overrides) ? u.overrides : {};
    const perm = str(ov.forgejoPermission) ?? (role === "namespace-owner" ? "read" : undefined);
    if ((ov.pushWhitelist === true || ov.mergeWhitelist === true) && (perm === "none" || perm === "read"))
      ctx.addIssue({ code: "custom", path: ["users", i, "overrides"], message: `write or admin forgejoPermission for a whitelisted user (Forgejo silently drops whitelisted users without write; got ${perm})` });
    if (state === "active" && role === "admin" && Array.isArray(u.sshKeys) && u.sshKeys.length === 0)
      ctx.addIssue({ code: "custom", path: ["users", i, "sshKeys"], message: "at least one ssh key for an active admin" });
  });
  if (users.length > 0 && !users.some((u) => str(u.role) === "admin" && (str(u.state) ?? "active") === "active"))
    ctx.addIssue({ code: "custom", path: ["users"], message: "at least one active admin" });
}
export type Roster = z.infer<typeof rosterSchema>;
