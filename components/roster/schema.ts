/**
 * The roster schema: the one definition every roster type comes from.
 *
 * Field-level rules live on the fields; rules that look across entries (duplicates, shared
 * ssh keys, personal groups, namespace ownership, purge approval and date) live in
 * `rosterSchema.superRefine` so that every problem is reported with a path, and from the
 * path a `file:line:col`. What the plan decides (who ends up with sudo) is checked by
 * `planProblems` in ../plan.ts, which `parseRoster` runs once this schema passed.
 * The README's "Roster rules" paragraph documents every rule.
 */
import { createPublicKey } from "crypto";
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
  "root",
  "daemon",
  "bin",
  "sys",
  "sync",
  "games",
  "man",
  "lp",
  "mail",
  "news",
  "uucp",
  "proxy",
  "www-data",
  "backup",
  "list",
  "irc",
  "gnats",
  "nobody",
  "nogroup",
  "sshd",
  "messagebus",
  "systemd-network",
  "systemd-resolve",
  "systemd-timesync",
  "systemd-journal",
  "systemd-coredump",
  "polkitd",
  "postfix",
  "ntp",
  "syslog",
  "_apt",
  "admin",
  "administrator",
  "sudo",
  "wheel",
  "adm",
  "staff",
  "users",
  "operator",
  "git",
  "forgejo",
  "gitea",
  "vault",
  "openbao",
  "tmux",
  "claude",
  "ubuntu",
  "debian",
  // the web terminal's service account (TERMINAL_ACCOUNT, components/plan/web.ts)
  "ttyd",
]);

/** Kubernetes system namespaces no user may own (besides every `kube-*` name). */
export const RESERVED_NAMESPACES: ReadonlySet<string> = new Set(["default", "kube-system", "kube-public", "kube-node-lease"]);

/**
 * Namespaces of common cluster add-ons (and of this project's own services): no user may
 * own them, because the add-on's controller runs there with cluster-wide rights and owning
 * the namespace means owning its service accounts and secrets. Besides these names, every
 * `*-system` name is reserved too (the add-on convention: istio-system, flux-system, …).
 * The README's "Roster rules" documents this list; keep them in step.
 */
export const ADDON_NAMESPACES: ReadonlySet<string> = new Set([
  // dashboards and UIs
  "kubernetes-dashboard",
  "dashboard",
  "headlamp",
  "portainer",
  "rancher",
  "cattle-system",
  // certificates and secrets
  "cert-manager",
  "vault",
  "openbao",
  "external-secrets",
  "sealed-secrets",
  "trust-manager",
  // ingress, gateways, service meshes, load balancers
  "ingress",
  "ingress-nginx",
  "nginx-ingress",
  "traefik",
  "kong",
  "haproxy-controller",
  "contour",
  "projectcontour",
  "envoy-gateway-system",
  "gateway",
  "nginx-gateway",
  "emissary",
  "ambassador",
  "istio-system",
  "istio-ingress",
  "linkerd",
  "linkerd-cni",
  "cilium-secrets",
  "linkerd-viz",
  "linkerd-jaeger",
  "metallb-system",
  "external-dns",
  // CNI
  "cilium",
  "calico-system",
  "calico-apiserver",
  "tigera-operator",
  "kube-flannel",
  "weave",
  // GitOps, CI/CD (including this project's own services)
  "flux-system",
  "flux",
  "fluxcd",
  "argocd",
  "argo-cd",
  "argo",
  "argo-rollouts",
  "argo-workflows",
  "argo-events",
  "tekton-pipelines",
  "tekton-pipelines-resolvers",
  "tekton-triggers",
  "tekton-chains",
  "forgejo",
  "gitea",
  "woodpecker",
  "harbor",
  "registry",
  // monitoring, logging, tracing
  "monitoring",
  "prometheus",
  "grafana",
  "loki",
  "tempo",
  "mimir",
  "logging",
  "observability",
  "jaeger",
  "opentelemetry",
  "metrics-server",
  "kube-state-metrics",
  "prometheus-operator",
  "victoria-metrics",
  "alloy",
  "promtail",
  "fluent-bit",
  "fluentd",
  // storage and backup
  "longhorn-system",
  "rook-ceph",
  "openebs",
  "local-path-storage",
  "velero",
  "minio",
  "minio-operator",
  "snapshot-controller",
  // policy, security, autoscaling, serverless, operators
  "gatekeeper-system",
  "kyverno",
  "falco",
  "trivy-system",
  "keda",
  "knative-serving",
  "knative-eventing",
  "knative-operator",
  "kubevirt",
  "cdi",
  "crossplane-system",
  "gpu-operator",
  "olm",
  "operators",
  "cluster-autoscaler",
  "descheduler",
  "reloader",
  "kserve",
  "spire",
  "node-feature-discovery",
]);

/** Why `ns` may not be owned by a user, or undefined when it may. */
export function reservedNamespaceProblem(ns: string): string | undefined {
  if (RESERVED_NAMESPACES.has(ns) || (ns.startsWith("kube-") && !ADDON_NAMESPACES.has(ns)))
    return "a namespace that is not a Kubernetes system namespace (default and kube-* are)";
  if (ADDON_NAMESPACES.has(ns) || ns.endsWith("-system"))
    return `a namespace that is not reserved for a cluster add-on (${ns} is${ns.endsWith("-system") && !ADDON_NAMESPACES.has(ns) ? ": every *-system name is" : ""})`;
  return undefined;
}

// ---- free text: data, never terminal control ----

/**
 * Characters no free-text roster field may hold (purge.reason, ssh key comments): every C0
 * control (tab and line breaks included), DEL, every C1 control (U+0080-009F: CSI, NEL, …),
 * the line and paragraph separators and the bidi controls (U+061C, U+200E-200F, the
 * embeddings and overrides U+202A-202E, the isolates U+2066-2069). Free text is shown in the
 * access report and in a pull request's access diff: an escape sequence or a bidi override
 * there could hide or reorder the lines a reviewer reads. README "Roster rules".
 */
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
export const CONTROL_CHARS = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const CONTROL_CHARS_ALL = new RegExp(CONTROL_CHARS.source, "g");

const hex4 = (c: string) => c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");

/** Why `s` is not plain text (names the first control character and where), or undefined. */
export function controlCharProblem(s: string): string | undefined {
  const m = CONTROL_CHARS.exec(s);
  if (!m) return undefined;
  return `text without control characters (U+${hex4(m[0])} at character ${m.index + 1}): free text is shown to reviewers and must not steer a terminal; no escape sequences, line breaks, tabs or bidi controls`;
}

/** `s` with every character of CONTROL_CHARS written as a JSON `\uXXXX` escape; the rest unchanged. */
export function escapeControls(s: string): string {
  return s.replace(CONTROL_CHARS_ALL, (c) => `\\u${hex4(c).toLowerCase()}`);
}

/** `s` as a JSON string literal that also escapes DEL, C1, separators and bidi controls: free text in a report. */
export function quoteText(s: string): string {
  return escapeControls(JSON.stringify(s));
}

/** A free-text field: at most `max` characters, none of CONTROL_CHARS. */
const freeText = (max: number) =>
  z
    .string()
    .max(max)
    .superRefine((s, ctx) => {
      const problem = controlCharProblem(s);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    });

// ---- ssh public keys: RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4, OpenSSH PROTOCOL.u2f ----

/** Key types a roster may hold. Anything else (ssh-dss, certificates, unknown) is refused. */
export const SSH_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
] as const;
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

/** Smallest and largest RSA modulus accepted, in bits (OpenSSH refuses above 16384). */
export const MIN_RSA_BITS = 2048;
export const MAX_RSA_BITS = 16384;

const LINE_FORMAT = "an OpenSSH public key line (type, base64 blob, optional comment)";

/** ECDSA curves: SSH name, JWK name, field size in bytes. */
const EC_CURVES: Readonly<Record<string, { jwk: string; bytes: number }>> = {
  nistp256: { jwk: "P-256", bytes: 32 },
  nistp384: { jwk: "P-384", bytes: 48 },
  nistp521: { jwk: "P-521", bytes: 66 },
};

class KeyProblem extends Error {}

/** Reads the SSH wire format (RFC 4251 §5) of one blob; every read checks its bounds. */
class WireReader {
  private off = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly type: string,
  ) {}
  string(field: string): Buffer {
    if (this.off + 4 > this.buf.length) throw new KeyProblem(`a complete ${this.type} key blob (it ends before the ${field})`);
    const n = this.buf.readUInt32BE(this.off);
    if (n > this.buf.length - this.off - 4) throw new KeyProblem(`a complete ${this.type} key blob (it ends inside the ${field})`);
    const out = this.buf.subarray(this.off + 4, this.off + 4 + n);
    this.off += 4 + n;
    return out;
  }
  /** A non-negative mpint, minimally encoded; returns its magnitude without a leading zero byte. */
  mpint(field: string): Buffer {
    const raw = this.string(field);
    if (raw.length > 0 && raw[0] & 0x80) throw new KeyProblem(`a ${this.type} key whose ${field} is a positive mpint (it is negative)`);
    if (raw.length > 1 && raw[0] === 0 && !(raw[1] & 0x80))
      throw new KeyProblem(`a ${this.type} key whose ${field} is a minimally encoded mpint (it has a superfluous leading zero byte)`);
    return raw[0] === 0 ? raw.subarray(1) : raw;
  }
  end(): void {
    const left = this.buf.length - this.off;
    if (left) throw new KeyProblem(`a ${this.type} key blob with nothing after its last field (it has ${left} trailing byte(s))`);
  }
}

const bitLength = (mag: Buffer): number => (mag.length === 0 ? 0 : (mag.length - 1) * 8 + (32 - Math.clz32(mag[0])));

// Ed25519 point decoding (RFC 8032 §5.1.3): y < p and (y²-1)/(d·y²+1) is a square.
const ED_P = (1n << 255n) - 19n;
const modPow = (b: bigint, e: bigint, m: bigint): bigint => {
  let r = 1n;
  for (b %= m; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
};
const ED_D = (((-121665n * modPow(121666n, ED_P - 2n, ED_P)) % ED_P) + ED_P) % ED_P;
function isEd25519Point(key: Buffer): boolean {
  const le = Buffer.from(key).reverse();
  const sign = le[0] >> 7;
  le[0] &= 0x7f;
  const y = BigInt("0x" + le.toString("hex"));
  if (y >= ED_P) return false;
  const y2 = (y * y) % ED_P;
  const u = (y2 - 1n + ED_P) % ED_P;
  const v = (ED_D * y2 + 1n) % ED_P;
  const x2 = (u * modPow(v, ED_P - 2n, ED_P)) % ED_P;
  if (x2 === 0n) return sign === 0;
  return modPow(x2, (ED_P - 1n) / 2n, ED_P) === 1n;
}

function checkEd25519(r: WireReader, type: string): void {
  const pk = r.string("public key");
  if (pk.length !== 32) throw new KeyProblem(`an ed25519 public key of exactly 32 bytes (${type} blob has ${pk.length})`);
  if (!isEd25519Point(pk)) throw new KeyProblem(`an ed25519 public key that is a point on the curve (these 32 bytes are not)`);
}

function checkEcdsa(r: WireReader, type: string, curveOfType: string): void {
  const curve = r.string("curve name").toString("latin1");
  if (curve !== curveOfType) throw new KeyProblem(`an ECDSA key whose curve matches its type ${type} (the blob names ${JSON.stringify(curve.slice(0, 40))})`);
  const { jwk, bytes } = EC_CURVES[curve];
  const q = r.string("point");
  if (q.length !== 1 + 2 * bytes) throw new KeyProblem(`an uncompressed ECDSA ${curve} point of ${1 + 2 * bytes} bytes (got ${q.length})`);
  if (q[0] !== 0x04) throw new KeyProblem(`an uncompressed ECDSA point (first byte 0x04, got 0x${q[0].toString(16).padStart(2, "0")})`);
  const b64url = (b: Buffer) => b.toString("base64url");
  try {
    createPublicKey({ key: { kty: "EC", crv: jwk, x: b64url(q.subarray(1, 1 + bytes)), y: b64url(q.subarray(1 + bytes)) }, format: "jwk" });
  } catch {
    throw new KeyProblem(`an ECDSA point on the ${curve} curve (this one is not)`);
  }
}

function checkApplication(r: WireReader): void {
  const app = r.string("application");
  if (app.length === 0 || !/^[\x21-\x7e]+$/.test(app.toString("latin1")))
    throw new KeyProblem("a security-key application string of printable characters (e.g. ssh:)");
}

/** The result of parsing one authorized_keys line. `blob` is the decoded key blob. */
export type SshKeyParse = { ok: true; type: SshKeyType; blob: Buffer; comment: string } | { ok: false; problem: string };

/**
 * Parses one OpenSSH public key line (`type base64 [comment]`, no options) and its whole
 * wire-format blob. `problem` says what was expected (without the word "expected").
 */
export function parseSshPublicKey(line: string): SshKeyParse {
  // The comment is free text: no C0, DEL, C1, separators or bidi controls (CONTROL_CHARS).
  if (CONTROL_CHARS.test(line)) return { ok: false, problem: `${LINE_FORMAT} without control characters, line breaks or bidi controls` };
  const m = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: (.*))?$/.exec(line);
  if (!m) return { ok: false, problem: LINE_FORMAT };
  const [, type, b64, comment = ""] = m;
  if (type === "ssh-dss" || type.startsWith("ssh-dss-"))
    return { ok: false, problem: "not a DSA (ssh-dss) key: DSA keys are 1024-bit, disabled since OpenSSH 7.0 and refused here; use ssh-ed25519" };
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type))
    return { ok: false, problem: `an OpenSSH public key of a supported type (${SSH_KEY_TYPES.join(", ")}); got ${JSON.stringify(type.slice(0, 60))}` };
  const blob = Buffer.from(b64, "base64");
  if (blob.toString("base64") !== b64) return { ok: false, problem: `${LINE_FORMAT} whose blob is canonical base64` };
  const r = new WireReader(blob, type);
  try {
    const inner = r.string("key type").toString("latin1");
    if (inner !== type)
      throw new KeyProblem(`an OpenSSH public key whose blob holds the type the line names (${type}; the blob holds ${JSON.stringify(inner.slice(0, 60))})`);
    switch (type as SshKeyType) {
      case "ssh-rsa": {
        const e = r.mpint("exponent e");
        const n = r.mpint("modulus n");
        const bits = bitLength(n);
        if (bits < MIN_RSA_BITS) throw new KeyProblem(`an RSA key of at least ${MIN_RSA_BITS} bits (this modulus has ${bits})`);
        if (bits > MAX_RSA_BITS) throw new KeyProblem(`an RSA key of at most ${MAX_RSA_BITS} bits (this modulus has ${bits})`);
        if (!(n[n.length - 1] & 1)) throw new KeyProblem("an RSA modulus that is odd (this one is even, so it is not a product of two primes)");
        const eBelowN = e.length < n.length || (e.length === n.length && Buffer.compare(e, n) < 0);
        if (e.length === 0 || !(e[e.length - 1] & 1) || bitLength(e) < 2 || !eBelowN)
          throw new KeyProblem(
            `an RSA public exponent that is odd, at least 3 and smaller than the modulus (got ${e.length <= 6 ? BigInt("0x" + (e.toString("hex") || "0")) : `a ${bitLength(e)}-bit number`})`,
          );
        break;
      }
      case "ssh-ed25519":
        checkEd25519(r, type);
        break;
      case "sk-ssh-ed25519@openssh.com":
        checkEd25519(r, type);
        checkApplication(r);
        break;
      case "ecdsa-sha2-nistp256":
      case "ecdsa-sha2-nistp384":
      case "ecdsa-sha2-nistp521":
        checkEcdsa(r, type, type.slice("ecdsa-sha2-".length));
        break;
      case "sk-ecdsa-sha2-nistp256@openssh.com":
        checkEcdsa(r, type, "nistp256");
        checkApplication(r);
        break;
    }
    r.end();
  } catch (e) {
    if (e instanceof KeyProblem) return { ok: false, problem: e.message };
    throw e;
  }
  return { ok: true, type: type as SshKeyType, blob, comment };
}

/** True when `key` is one OpenSSH public key line with a complete, well-formed key blob. */
export function isSshPublicKey(key: string): boolean {
  return parseSshPublicKey(key).ok;
}

/** The one options field a roster key may carry: a forced command, every other permission off (sshd's `restrict`). */
export const KEY_OPTIONS_FORM = 'restrict,command="<absolute program> <plain arguments>"';
const FORCED_COMMAND = /^\/[A-Za-z0-9._/-]+( [A-Za-z0-9._/:=,@+%-]+)*$/;

/**
 * A roster key line: an OpenSSH public key, optionally after exactly `restrict,command="…"`
 * (a forced-command key: the deploy key of the team's web terminal is one). Any other option
 * (`from=`, `permitopen=`, `no-pty` alone, a `command=` without `restrict`, …) is refused: each
 * would be a grant the roster's readers cannot see at a glance.
 */
export function splitKeyOptions(line: string): { key: string; command?: string } | { problem: string } {
  // Options come before the key type: a first word that is not a key type, with one later.
  const first = line.split(" ", 1)[0];
  if (/^(ssh-|ecdsa-|sk-)/.test(first) || !/ (ssh-|ecdsa-|sk-)\S+ [A-Za-z0-9+/]/.test(line)) return { key: line };
  const m = /^restrict,command="([^"\\]*)" (.*)$/.exec(line);
  if (!m) return { problem: `an OpenSSH public key line, optionally after exactly ${KEY_OPTIONS_FORM} (a forced-command key); no other options` };
  if (!FORCED_COMMAND.test(m[1]))
    return {
      problem: `a forced command that is an absolute program with plain arguments (letters, digits and . _ / : = , @ + % -), in ${KEY_OPTIONS_FORM}; got ${JSON.stringify(m[1].slice(0, 80))}`,
    };
  return { key: m[2], command: m[1] };
}

/** True for a key line that carries a forced command (it gives no shell). */
export function isRestrictedKey(line: string): boolean {
  const s = splitKeyOptions(line);
  return "key" in s && s.command !== undefined;
}

const sshKey = z.string().superRefine((line, ctx) => {
  const split = splitKeyOptions(line);
  if ("problem" in split) return void ctx.addIssue({ code: "custom", message: split.problem });
  const r = parseSshPublicKey(split.key);
  if (!r.ok) ctx.addIssue({ code: "custom", message: r.problem });
});

// ---- groups: an allow-list policy ----

/**
 * Every group that Debian (base-passwd, systemd, udev) and common packages create as a
 * system group, plus the reserved names. None may be given through `groups` unless it is in
 * ALLOWED_SYSTEM_GROUPS: many are root-equivalent (sudo, disk, docker, lxd, libvirt, staff,
 * …) or read other users' data (adm, systemd-journal, shadow, mail, plocate, input, tty, …).
 * Names starting with `_` or `systemd-` are system groups too. Any other name is a *team
 * group*, which the host side requires to exist with gid >= 1000 and not be a personal group.
 */
export const SYSTEM_GROUPS: ReadonlySet<string> = new Set([
  // base-passwd (group.master) and Debian's fixed system groups
  "root",
  "daemon",
  "bin",
  "sys",
  "adm",
  "tty",
  "disk",
  "lp",
  "mail",
  "news",
  "uucp",
  "man",
  "proxy",
  "kmem",
  "dialout",
  "fax",
  "voice",
  "cdrom",
  "floppy",
  "tape",
  "sudo",
  "audio",
  "dip",
  "www-data",
  "backup",
  "operator",
  "list",
  "irc",
  "src",
  "gnats",
  "shadow",
  "utmp",
  "video",
  "sasl",
  "plugdev",
  "staff",
  "games",
  "users",
  "nogroup",
  "nobody",
  "sync",
  "admin",
  "wheel",
  "syslog",
  // systemd and udev
  "systemd-journal",
  "systemd-network",
  "systemd-resolve",
  "systemd-timesync",
  "systemd-coredump",
  "systemd-oom",
  "systemd-journal-remote",
  "systemd-journal-upload",
  "input",
  "sgx",
  "kvm",
  "render",
  "clock",
  "uinput",
  "tss",
  "rdma",
  "i2c",
  "gpio",
  "spi",
  "uuidd",
  // base services
  "crontab",
  "messagebus",
  "ssh",
  "_ssh",
  "sshd",
  "netdev",
  "bluetooth",
  "lpadmin",
  "scanner",
  "saned",
  "polkitd",
  "_chrony",
  "chrony",
  "ntp",
  "ntpsec",
  "postfix",
  "postdrop",
  "mlocate",
  "plocate",
  "ssl-cert",
  "fuse",
  "avahi",
  "avahi-autoipd",
  "pulse",
  "pulse-access",
  "pipewire",
  "rtkit",
  "colord",
  "geoclue",
  "lightdm",
  "gdm",
  "sddm",
  "nopasswdlogin",
  "autologin",
  "_apt",
  "_flatpak",
  "fwupd-refresh",
  "tcpdump",
  "wireshark",
  "pcap",
  "sambashare",
  "winbindd_priv",
  "dnsmasq",
  "bind",
  "named",
  "unbound",
  "exim",
  "mysql",
  "postgres",
  "redis",
  "mongodb",
  "memcache",
  "nginx",
  "haproxy",
  "dovecot",
  "dovenull",
  "opendkim",
  "clamav",
  "smmsp",
  "nullmailer",
  "statd",
  "rpc",
  "_rpc",
  "munge",
  "slurm",
  // containers and virtualisation (root-equivalent)
  "docker",
  "lxd",
  "lxc",
  "incus",
  "incus-admin",
  "libvirt",
  "libvirtd",
  "libvirt-qemu",
  "libvirt-dnsmasq",
  "qemu",
  "podman",
  "containerd",
  "microk8s",
  "snap_daemon",
  "vboxusers",
  "vboxsf",
  "kubernetes",
  "kube",
  "k3s",
  "rke2",
  "etcd",
  "ceph",
  "nvidia-persistenced",
  // this project's services and other reserved names
  "git",
  "forgejo",
  "gitea",
  "vault",
  "openbao",
  "consul",
  "nomad",
  "woodpecker",
  "jenkins",
  "gitlab-runner",
  "prometheus",
  "grafana",
  "node-exporter",
  "tmux",
  "claude",
  "ubuntu",
  "debian",
  "administrator",
  ...RESERVED_NAMES,
]);

/**
 * The only system groups (of SYSTEM_GROUPS) a user may be given: device access with no reach
 * into other users' data.
 */
export const ALLOWED_SYSTEM_GROUPS: ReadonlySet<string> = new Set(["audio", "plugdev", "users", "video"]);

/** Why `g` may not be given through a user's `groups`, or undefined when it may (roster side only). */
export function groupProblem(g: string): string | undefined {
  const allowed = `allowed system groups are ${[...ALLOWED_SYSTEM_GROUPS].sort().join(", ")}; other names must be team groups`;
  if (g.startsWith("workstation-")) return `an allowed group: ${g} is managed by the program (workstation-* groups come from the role)`;
  if (ALLOWED_SYSTEM_GROUPS.has(g)) return undefined;
  if (SYSTEM_GROUPS.has(g) || g.startsWith("_") || g.startsWith("systemd-")) {
    const sudo = ["sudo", "wheel", "admin"].includes(g) ? "; sudo comes from the role or overrides.sudo" : "";
    return `an allowed group: ${g} is a system group (root-equivalent or reads other users' data)${sudo}; ${allowed}`;
  }
  return undefined;
}

const groupName = z
  .string()
  .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { message: "a group name: lowercase letter or _ first, then up to 31 of [a-z0-9_-]" })
  .superRefine((g, ctx) => {
    const problem = groupProblem(g);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

const unixName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,30}$/, {
    message: "a unix name: lowercase letter first, then up to 30 of [a-z0-9_-]",
  })
  // A user's name is also their personal group: no system group name either.
  .refine((n) => !RESERVED_NAMES.has(n) && !SYSTEM_GROUPS.has(n), { message: "a name that is not reserved for the system" });

const namespaceName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, {
    message: "a Kubernetes namespace name (DNS-1123 label, at most 63 chars)",
  })
  .superRefine((ns, ctx) => {
    const problem = reservedNamespaceProblem(ns);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

/** ttyd refuses an `-H` header value of 30 bytes or more: the longest SSO identity, in bytes. */
export const SSO_MAX_BYTES = 29;

/**
 * Why `id` cannot be an SSO identity (the authentik username the proxy sends as
 * `X-authentik-username`), or undefined. It is a key of /etc/ttyd-user-map (`id=user`, `#`
 * comments, an optional `:cwd`) and of /etc/t3-serve/dispatch.json, and the readers match
 * the part before an `@`: so no `@`, `=`, `:`, `#`, quotes or spaces.
 */
export function ssoProblem(id: string): string | undefined {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id))
    return "an SSO username (the authentik username): a letter or digit first, then letters, digits, '.', '_' or '-' (no '@': the web readers match the part before it; no '=', ':', '#' or spaces: the identity map's separators)";
  const n = Buffer.byteLength(id);
  if (n > SSO_MAX_BYTES) return `an SSO username under 30 bytes (ttyd refuses header values of 30 bytes or more; this one has ${n})`;
  return undefined;
}

const ssoName = z.string().superRefine((s, ctx) => {
  const problem = ssoProblem(s);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
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
  /**
   * How the agent keeps this user's Claude login (README "Claude logins"): `rotating` refreshes
   * the login Claude keeps in ~/.claude; `setup-token` delivers the long-lived token the user
   * stored (`claude setup-token`) to every Claude the user starts, and never refreshes.
   */
  claudeLogin: z.enum(["rotating", "setup-token"]).optional(),
  /** Kubernetes tier for the generated kubeconfig. */
  kubeTier: z.enum(["none", "namespace", "read-only", "cluster-admin"]).optional(),
  /** A T3 Code server for this user (`t3-serve@<user>.service` on a sticky port; README "Web access"). */
  t3: z.boolean().optional(),
});
export type Overrides = z.infer<typeof overridesSchema>;

/**
 * A memory size as systemd reads it: bytes with a K/M/G/T suffix (base 1024), or a percentage
 * of the host's RAM (`75%`). Kept as written: the drop-in carries it unchanged, and the
 * capacity check converts it with the host's RAM (components/plan/limits.ts).
 */
export const memorySize = z
  .string()
  .regex(/^(?:[1-9][0-9]{0,5}[KMGT]|0|(?:[1-9][0-9]?|100)%)$/, { message: "a size like 512M, 8G or 25% (of the host's RAM), or 0" });

/** Per-user resource limits (issue 23): each overrides the role's default (plan/limits.ts). */
export const limitsSchema = z.strictObject({
  /** The user's slice MemoryMax: all of the user's processes together. */
  memoryMax: memorySize.optional(),
  /** The user's slice MemorySwapMax (0: no swap, the default). */
  swapMax: memorySize.optional(),
  /** CPUWeight of the user's slice (1-10000, 100 is systemd's default). */
  cpuWeight: z.number().int().min(1).max(10000).optional(),
  /** CPUQuota of the user's slice, percent of one CPU (200% = two CPUs); absent: none. */
  cpuQuota: z
    .string()
    .regex(/^[1-9][0-9]{0,4}%$/, { message: "a percentage of one CPU like 200%" })
    .optional(),
  /** TasksMax of the user's slice (processes and threads); absent: the role's. */
  tasksMax: z.number().int().min(64).max(4194304).optional(),
  /** MemoryMax of each pane's scope (OOMPolicy=continue): one kill takes one process. */
  paneMemoryMax: memorySize.optional(),
});
export type Limits = z.infer<typeof limitsSchema>;

/** Why `d` is not a real YYYY-MM-DD calendar date (proleptic Gregorian), or undefined. */
export function calendarDateProblem(d: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(d);
  if (!m) return "a date YYYY-MM-DD";
  const [y, mo, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1];
  if (days === undefined || day < 1 || day > days) return `a real calendar date YYYY-MM-DD (${d} does not exist)`;
  return undefined;
}

/** Today's date in UTC, YYYY-MM-DD: what purge approval dates are compared with. */
export const todayUtc = (now: Date = new Date()): string => now.toISOString().slice(0, 10);

/** The explicit approval that lets an offboarded user's home and data be purged. */
export const purgeSchema = z.strictObject({
  /** The admin (roster name) who approved the purge. */
  approvedBy: unixName,
  /** When it was approved, YYYY-MM-DD: a real calendar date, not in the future (checked in crossEntryChecks). */
  approvedOn: z.string().superRefine((d, ctx) => {
    const problem = calendarDateProblem(d);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }),
  /** Optional ticket or reason: free text, no control characters (shown in the report and the diff). */
  reason: freeText(500).optional(),
});

/** A Forgejo repository `owner/name` (its clone goes to ~/code/<name>). */
const repoRef = z
  .string()
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,38}[A-Za-z0-9])?\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/, { message: "a Forgejo repository owner/name" })
  .refine((r) => !/\.git$/i.test(r) && !r.split("/")[1].startsWith("."), { message: "a repository name without .git and not starting with a dot" });

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
  /**
   * The SSO identity: the authentik username the reverse proxy sends as `X-authentik-username`,
   * which the web surfaces map to this account. Default: `name`. Unique across the roster
   * (case-insensitively) and under 30 bytes. README "Web access".
   */
  sso: ssoName.optional(),
  /** Forgejo username. The preflight refuses it unless that account's email is `forgejoEmail` (else `email`). */
  forgejo: z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,38}[A-Za-z0-9])?$/, { message: "a Forgejo username" }),
  /**
   * The exception: the email of the user's Forgejo account when it is not `email` (e.g. a
   * contractor whose Forgejo account has their own company's address). The preflight then
   * checks the `forgejo` login against this address; the access diff flags it (README "Forgejo").
   */
  forgejoEmail: z.email({ message: "an email address (the Forgejo account's)" }).optional(),
  /**
   * The user's Kubernetes identity when it is not `email` (the team's RBAC subjects are plain
   * emails that can differ from the Claude email): the OIDC username the bindings name is
   * `kubeUsernamePrefix` + this (with `kubeUsernameClaim=email`). README "Kubernetes".
   */
  k8sUser: z.email({ message: "an email address (the user's Kubernetes identity)" }).optional(),
  /**
   * Where the user's clones live: `single` (the infra repo is ~/code: the default) or
   * `workspace` (the infra repo at ~/code/infra, `repos` beside it at ~/code/<name>). A clone
   * that exists at the other layout's place is adopted where it is (README "Forgejo").
   */
  codeLayout: z.enum(["single", "workspace"]).default("single"),
  /** With `codeLayout: workspace`: further Forgejo repos (`owner/name`) cloned once to ~/code/<name>. */
  repos: z.array(repoRef).default([]),
  /** OpenSSH public keys, one per line of authorized_keys. */
  sshKeys: z.array(sshKey).default([]),
  /** Login shell. */
  shell: z.enum(["/bin/bash", "/bin/sh", "/usr/bin/zsh", "/usr/bin/fish"]).default("/bin/bash"),
  /** Extra supplementary groups on top of the role's. */
  groups: z.array(groupName).default([]),
  /** Namespaces this user owns (namespace-owners only). */
  namespaces: z.array(namespaceName).default([]),
  overrides: overridesSchema.default({}),
  /** Resource limits over the role's defaults (memory, swap, CPU, tasks, per pane). */
  limits: limitsSchema.default({}),
  state: z.enum(STATES).default("active"),
  /** Bump to rotate this user's machine credentials (the Vault AppRole secret_id). */
  credentialRotation: z.number().int().min(0).default(0),
  /**
   * The account already exists on the host and this program did not create it: take it over.
   * Without it, an existing account that is not in the host's uid ledger is refused (a roster
   * entry naming someone else's account must not hand it the entry's keys, groups and sudo).
   */
  adopt: z.boolean().default(false),
  /**
   * With `adopt`: take away what this program did not grant. An adopted account keeps its other
   * supplementary groups and its home's mode; `tighten: true` sets the groups to exactly the
   * roster's and the home to 0750 (the access diff flags it). No effect on accounts the program created.
   */
  tighten: z.boolean().default(false),
  /** Only for offboarded users: the approval for the destructive purge. */
  purge: purgeSchema.optional(),
});
export type RosterUser = z.infer<typeof userSchema>;

/** What the cross-entry rules compare with that is not in the roster. */
export interface RosterContext {
  /** Today, YYYY-MM-DD (UTC); read at every parse. Default: the real clock. */
  today?: () => string;
}

/** The roster schema with an explicit context (tests pass a fixed `today`). */
export function rosterSchemaWith(context: RosterContext = {}) {
  const today = context.today ?? (() => todayUtc());
  return z
    .strictObject({
      version: z.literal(1),
      users: z.array(userSchema).min(1, { message: "at least one user (an empty roster would cut every account, admins included)" }),
    })
    .superRefine((roster, ctx) => crossEntryChecks(roster, ctx, today()), {
      // Run even when some fields failed, so every problem is reported at once.
      when: (payload) => isRecord(payload.value) && Array.isArray(payload.value.users),
    });
}

/** The whole roster file. */
export const rosterSchema = rosterSchemaWith();

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The SSO identity, explicit or the name it defaults to: unique across the roster, offboarded
 * entries included (case-insensitively, as authentik matches usernames), and a valid header
 * value (a name of 30 bytes or more needs an explicit `sso`).
 */
function ssoChecks(users: Record<string, unknown>[], ctx: z.RefinementCtx, nameOf: (i: number) => string): void {
  const first = new Map<string, number>();
  users.forEach((u, i) => {
    const explicit = typeof u.sso === "string" ? u.sso : undefined;
    const id = explicit ?? (typeof u.name === "string" ? u.name : undefined);
    if (id === undefined) return;
    const path = ["users", i, explicit === undefined ? "name" : "sso"];
    if (explicit === undefined && /^[a-z][a-z0-9_-]*$/.test(id) && Buffer.byteLength(id) > SSO_MAX_BYTES)
      ctx.addIssue({
        code: "custom",
        path,
        message: `an explicit sso for a name of ${Buffer.byteLength(id)} bytes: the SSO identity defaults to the name, and ttyd refuses header values of 30 bytes or more`,
      });
    const key = id.toLowerCase();
    const prev = first.get(key);
    if (prev === undefined) first.set(key, i);
    else {
      const theirs = typeof users[prev].sso === "string" ? "sso" : "name (its SSO identity by default)";
      ctx.addIssue({
        code: "custom",
        path,
        message: `a unique SSO identity: ${JSON.stringify(id)} is already the ${theirs} of users[${prev}] (${nameOf(prev)})${explicit === undefined ? "; set sso" : ""}`,
      });
    }
  });
}

/** Rules across entries. Written against possibly-invalid data: every access is checked. */
type Entry = Record<string, unknown>;
const asStr = (v: unknown): string | undefined => (typeof v === "string" || typeof v === "number" ? String(v) : undefined);

/** `repos`: only with the workspace layout, one per name, never `infra`. */
function repoChecks(u: Entry, i: number, ctx: z.RefinementCtx): void {
  const repos = Array.isArray(u.repos) ? u.repos : [];
  if (repos.length && asStr(u.codeLayout) !== "workspace")
    ctx.addIssue({ code: "custom", path: ["users", i, "repos"], message: "no repos unless codeLayout is workspace (they are cloned beside ~/code/infra)" });
  const dirs = new Map<string, number>();
  repos.forEach((r, j) => {
    const name = asStr(r)?.split("/")[1]?.toLowerCase();
    if (name === undefined) return;
    if (name === "infra")
      ctx.addIssue({ code: "custom", path: ["users", i, "repos", j], message: "a repo not named infra (~/code/infra is the infra repo's clone)" });
    else if (dirs.has(name))
      ctx.addIssue({ code: "custom", path: ["users", i, "repos", j], message: `one repo per name: ~/code/${name} is already repos[${dirs.get(name)}]` });
    else dirs.set(name, j);
  });
}

/** A purge approval: offboarded only, by another active admin, not dated in the future. */
function purgeChecks(users: Entry[], u: Entry, i: number, ctx: z.RefinementCtx, today: string): void {
  const state = asStr(u.state) ?? "active";
  if (isRecord(u.purge)) {
    if (state !== "offboarded")
      ctx.addIssue({ code: "custom", path: ["users", i, "purge"], message: `no purge approval unless state is offboarded (state is ${state})` });
    const by = asStr(u.purge.approvedBy);
    const approver = users.find((a) => asStr(a.name) === by);
    if (!approver || asStr(approver.role) !== "admin" || (asStr(approver.state) ?? "active") !== "active")
      ctx.addIssue({ code: "custom", path: ["users", i, "purge", "approvedBy"], message: `an active admin in this roster (${by} is not)` });
    else if (by === asStr(u.name))
      ctx.addIssue({ code: "custom", path: ["users", i, "purge", "approvedBy"], message: "another admin: users cannot approve their own purge" });
    const on = asStr(u.purge.approvedOn);
    if (on !== undefined && calendarDateProblem(on) === undefined && on > today)
      ctx.addIssue({
        code: "custom",
        path: ["users", i, "purge", "approvedOn"],
        message: `a purge approval date that is not in the future (${on} is after today, ${today} UTC)`,
      });
  }
}

/** Every ssh key (its decoded blob) belongs to one entry, once. */
function keyChecks(users: Entry[], ctx: z.RefinementCtx, nameOf: (i: number) => string): void {
  const keyOwner = new Map<string, [number, number]>();
  users.forEach((u, i) => {
    (Array.isArray(u.sshKeys) ? u.sshKeys : []).forEach((kRaw, j) => {
      // Compare the decoded blob (it holds the type); the comment does not make a key another key.
      const split = typeof kRaw === "string" ? splitKeyOptions(kRaw) : undefined;
      const m = split && "key" in split ? /^\S+ ([A-Za-z0-9+/]+={0,2})(?: |$)/.exec(split.key) : null;
      if (!m) return;
      const id = Buffer.from(m[1], "base64").toString("base64");
      const prev = keyOwner.get(id);
      if (prev === undefined) keyOwner.set(id, [i, j]);
      else if (prev[0] === i)
        ctx.addIssue({
          code: "custom",
          path: ["users", i, "sshKeys", j],
          message: `a key listed once: the same key is already users[${i}].sshKeys[${prev[1]}]`,
        });
      else
        ctx.addIssue({
          code: "custom",
          path: ["users", i, "sshKeys", j],
          message: `a key used by one user only: the same key is already users[${prev[0]}] (${nameOf(prev[0])})`,
        });
    });
  });
}

function crossEntryChecks(rosterIn: unknown, ctx: z.RefinementCtx, today: string): void {
  const users = (isRecord(rosterIn) && Array.isArray(rosterIn.users) ? rosterIn.users : []).map((u) => (isRecord(u) ? u : {}));
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
  ssoChecks(users, ctx, nameOf);
  // The Kubernetes identity (k8sUser, else email) is what the bindings name: one per person.
  const kubeIds = new Map<string, number>();
  users.forEach((u, i) => {
    const id = (str(u.k8sUser) ?? str(u.email))?.toLowerCase();
    if (id === undefined) return;
    const prev = kubeIds.get(id);
    if (prev === undefined) kubeIds.set(id, i);
    else if (str(u.k8sUser) !== undefined || str(users[prev].k8sUser) !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["users", i, str(u.k8sUser) !== undefined ? "k8sUser" : "email"],
        message: `a unique Kubernetes identity: ${JSON.stringify(id)} is already users[${prev}] (${nameOf(prev)})'s (k8sUser, else email)`,
      });
  });

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
    repoChecks(u, i, ctx);
    purgeChecks(users, u, i, ctx, today);
    const groups = Array.isArray(u.groups) ? u.groups : [];
    groups.forEach((gRaw, j) => {
      const g = str(gRaw);
      const k = g === undefined ? -1 : users.findIndex((o) => str(o.name) === g);
      if (k === i)
        ctx.addIssue({
          code: "custom",
          path: ["users", i, "groups", j],
          message: `an allowed group: ${g} is this user's own personal group (every home is group-readable by its personal group)`,
        });
      else if (k >= 0)
        ctx.addIssue({
          code: "custom",
          path: ["users", i, "groups", j],
          message: `an allowed group: ${g} is the personal group of users[${k}] (${g}), whose home is group-readable by it`,
        });
    });
    const ov = isRecord(u.overrides) ? u.overrides : {};
    const perm = str(ov.forgejoPermission) ?? (role === "namespace-owner" ? "read" : undefined);
    if ((ov.pushWhitelist === true || ov.mergeWhitelist === true) && (perm === "none" || perm === "read"))
      ctx.addIssue({
        code: "custom",
        path: ["users", i, "overrides"],
        message: `write or admin forgejoPermission for a whitelisted user (Forgejo silently drops whitelisted users without write; got ${perm})`,
      });
    if (ov.claudeLogin === "setup-token" && ov.claudeTokenRenew === false)
      ctx.addIssue({
        code: "custom",
        path: ["users", i, "overrides", "claudeLogin"],
        message: "claudeTokenRenew for setup-token (its agent delivers the token): drop claudeTokenRenew: false, or claudeLogin: setup-token",
      });
    if (state === "active" && role === "admin" && Array.isArray(u.sshKeys) && u.sshKeys.length === 0)
      ctx.addIssue({ code: "custom", path: ["users", i, "sshKeys"], message: "at least one ssh key for an active admin" });
  });
  keyChecks(users, ctx, nameOf);
  if (users.length > 0 && !users.some((u) => str(u.role) === "admin" && (str(u.state) ?? "active") === "active"))
    ctx.addIssue({ code: "custom", path: ["users"], message: "at least one active admin" });
}
export type Roster = z.infer<typeof rosterSchema>;
