/**
 * The takeover plan (issue 21 item 4), the pure part: from the roster's plan and what a
 * read-only probe of the host found (tools/takeover.ts), per user and for the host, what the
 * first `pulumi up` will create, adopt, change, retire, migrate, leave alone, and what blocks it.
 */
import { LEDGER, LEGACY_DIR, TMUX_PERSIST_PROGRAM } from "../components/hostContract";
import { LEGACY_RECONCILE_FILES, LEGACY_RECONCILE_UNITS, LEGACY_TMUX_UNITS } from "../components/scripts/legacy";
import { HOST_FILES_MANIFEST } from "../components/scripts/hostFiles";
import type { Plan, UserPlan } from "../components/plan";

/** What ~/code is (looked at as the user): a clone, a workspace holding ~/code/infra, another directory, nothing. */
export type CodeFact = "single" | "workspace" | "dir" | "none";

/** What the probe (TAKEOVER_PROBE) printed, parsed. */
export interface HostFacts {
  /** name -> passwd entry */
  passwd: Map<string, { uid: number; gid: number; home: string; shell: string }>;
  /** group name -> members (supplementary) */
  groups: Map<string, string[]>;
  /** `uid name` lines of the uid ledger */
  ledger: Set<string>;
  /** roster name -> its home's owner uid and mode, or null when /home/<name> is missing */
  homes: Map<string, { uid: number; mode: string } | null>;
  /** roster name -> lines in ~/.ssh/authorized_keys (counted as the user), or null: no such file */
  userKeys: Map<string, number | null>;
  /** unit -> `enabled active` as systemctl says */
  units: Map<string, { enabled: string; active: string }>;
  /** where /usr/local/bin/tmux-persist resolves, or "missing" */
  tmuxPersistBin: string;
  /** Files the legacy reconcile installs where the program installs its own, present and not the program's (moved aside by the first up) */
  reconcileFiles: string[];
  /** user -> legacy snapshots and tombstones in /var/lib/tmux-persist */
  legacyStore: Map<string, { snapshots: number; tombstones: number }>;
  /** merged /usr: /bin is a link to usr/bin */
  mergedUsr: boolean;
  /** roster name -> what its ~/code is */
  code: Map<string, CodeFact>;
}

/** Where the program installs tmux-persist (the link /usr/local/bin/tmux-persist points at it). */
export const OUR_TMUX_PERSIST = TMUX_PERSIST_PROGRAM;

/**
 * The probe, run as root over ssh with the roster's names as arguments: reads only. Keys
 * files are counted by `wc` running as their owner (setpriv), so a link a user planted there
 * is followed with the user's rights, never root's; nothing of a file's content is printed.
 */
export const TAKEOVER_PROBE = `set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
sed 's/^/passwd\\t/' /etc/passwd
sed 's/^/group\\t/' /etc/group
[ -f ${LEDGER} ] && sed 's/^/ledger\\t/' ${LEDGER}
for n in "$@"; do
  case "$n" in *[!a-z0-9_-]*|"") continue ;; esac
  if [ -d "/home/$n" ] && [ ! -L "/home/$n" ]; then printf 'home\\t%s\\t%s\\n' "$n" "$(stat -c '%u %a' "/home/$n")"; else printf 'home\\t%s\\tmissing\\n' "$n"; fi
  uid=$(id -u "$n" 2>/dev/null || true)
  if [ -n "$uid" ] && [ -d "/home/$n" ]; then
    c=$(setpriv --reuid="$uid" --regid="$(id -g "$n")" --clear-groups -- sh -c 'test -f "$1" && wc -l <"$1" || echo none' sh "/home/$n/.ssh/authorized_keys" 2>/dev/null || echo none)
    printf 'keys\\t%s\\t%s\\n' "$n" "$c"
    l=$(setpriv --reuid="$uid" --regid="$(id -g "$n")" --clear-groups -- sh -c 'if [ -e "$1/code/.git" ]; then echo single; elif [ -e "$1/code/infra/.git" ]; then echo workspace; elif [ -d "$1/code" ]; then echo dir; else echo none; fi' sh "/home/$n" 2>/dev/null || echo none)
    printf 'code\\t%s\\t%s\\n' "$n" "$l"
  fi
done
for u in ${[...LEGACY_RECONCILE_UNITS, ...LEGACY_TMUX_UNITS].join(" ")}; do
  printf 'unit\\t%s\\t%s\\t%s\\n' "$u" "$(systemctl is-enabled "$u" 2>/dev/null || true)" "$(systemctl is-active "$u" 2>/dev/null || true)"
done
for f in ${LEGACY_RECONCILE_FILES.join(" ")}; do
  if [ -f "$f" ] && [ ! -L "$f" ] && ! awk -v f="$f" '$3 == f { found = 1 } END { exit !found }' ${HOST_FILES_MANIFEST} 2>/dev/null; then printf 'rfile\t%s\n' "$f"; fi
done
if [ -e /usr/local/bin/tmux-persist ]; then printf 'tpbin\\t%s\\n' "$(readlink -f /usr/local/bin/tmux-persist)"; else printf 'tpbin\\tmissing\\n'; fi
if [ -d /var/lib/tmux-persist/snapshots ]; then
  for d in /var/lib/tmux-persist/snapshots/*/; do
    [ -d "$d" ] || continue
    u=$(basename "$d")
    printf 'legacy\\t%s\\t%s\\t%s\\n' "$u" "$(find "$d" -maxdepth 1 -name '*.tsv' -type f | wc -l)" "$(cat "/var/lib/tmux-persist/$u.forgotten.tsv" 2>/dev/null | wc -l)"
  done
fi
[ "$(readlink /bin)" = usr/bin ] && echo 'merged-usr' || true
`;

/** Parses the probe's output. */
export function parseFacts(out: string): HostFacts {
  const f: HostFacts = {
    passwd: new Map(),
    groups: new Map(),
    ledger: new Set(),
    homes: new Map(),
    userKeys: new Map(),
    units: new Map(),
    tmuxPersistBin: "missing",
    reconcileFiles: [],
    legacyStore: new Map(),
    mergedUsr: false,
    code: new Map(),
  };
  for (const line of out.split("\n")) {
    const [kind, ...r] = line.split("\t");
    if (kind === "passwd") {
      const p = r.join("\t").split(":");
      if (p.length === 7) f.passwd.set(p[0], { uid: Number(p[2]), gid: Number(p[3]), home: p[5], shell: p[6] });
    } else if (kind === "group") {
      const g = r.join("\t").split(":");
      if (g.length === 4) f.groups.set(g[0], g[3].split(",").filter(Boolean));
    } else if (kind === "ledger") f.ledger.add(r[0].trim());
    else if (kind === "home") {
      const m = /^([0-9]+) ([0-7]+)$/.exec(r[1] ?? "");
      f.homes.set(r[0], m ? { uid: Number(m[1]), mode: m[2] } : null);
    } else if (kind === "keys") f.userKeys.set(r[0], /^[0-9]+$/.test((r[1] ?? "").trim()) ? Number(r[1]) : null);
    else if (kind === "unit") f.units.set(r[0], { enabled: r[1] || "not-found", active: r[2] || "inactive" });
    else if (kind === "tpbin") f.tmuxPersistBin = r[0];
    else if (kind === "rfile") f.reconcileFiles.push(r[0]);
    else if (kind === "legacy") f.legacyStore.set(r[0], { snapshots: Number(r[1]), tombstones: Number(r[2]) });
    else if (kind === "merged-usr") f.mergedUsr = true;
    else if (kind === "code" && /^(single|workspace|dir|none)$/.test(r[1] ?? "")) f.code.set(r[0], r[1] as CodeFact);
  }
  return f;
}

export interface TakeoverPlan {
  /** `<user>: <verb> …` and `host: …` lines, in roster order then the host */
  lines: string[];
  /** what stops the first up (or would make it disturb someone); empty: go */
  blockers: string[];
}

const resolveShell = (s: string, merged: boolean) => (merged ? s.replace(/^\/(bin|sbin)\//, "/usr/$1/") : s);

/** An adopted account's groups the roster does not name: kept, or with `tighten` left, one line per group. */
function extraGroupLines(u: UserPlan, f: HostFacts, say: (what: string) => void): void {
  const extra = [...f.groups]
    .filter(([g, m]) => m.includes(u.name) && !u.groups.includes(g))
    .map(([g]) => g)
    .sort();
  if (!extra.length) return;
  if (!u.tighten) return say(`leave alone: keeps ${extra.join(", ")} (not granted by the program)`);
  for (const g of extra) say(`change (tighten): leaves ${g}`);
  const home = f.homes.get(u.name);
  if (home && home.mode !== "750") say(`change (tighten): home mode ${home.mode} -> 750`);
  if (home && home.uid !== u.uid) say(`change (tighten): home owner uid ${home.uid} -> ${u.name}`);
}

/** The plan for one roster user. */
function userLines(u: UserPlan, f: HostFacts, lines: string[], blockers: string[]): void {
  const say = (what: string): void => void lines.push(`${u.name}: ${what}`);
  const block = (what: string): void => void blockers.push(`${u.name}: ${what}`);
  const acct = f.passwd.get(u.name);
  const byUid = [...f.passwd].find(([, a]) => a.uid === u.uid);
  if (byUid && byUid[0] !== u.name) block(`uid ${u.uid} belongs to ${byUid[0]} on the host; pin another uid in the roster`);
  for (const g of u.groups)
    if (!g.startsWith("workstation-") && !f.groups.has(g))
      block(`group ${g} (named in the roster) does not exist on the host; create it or drop it from the entry`);
  if (!acct) {
    if (f.homes.get(u.name)) block(`/home/${u.name} exists without an account; move it aside or adopt the account it belongs to`);
    say(`create: a new account, uid ${u.uid}, home /home/${u.name}, ${u.state}`);
    return;
  }
  if (acct.uid !== u.uid) return block(`the account has uid ${acct.uid}, the roster says ${u.uid}; pin ${acct.uid} in the roster`);
  if (acct.home !== `/home/${u.name}`) block(`its home is ${acct.home}, not /home/${u.name}; the program manages /home/${u.name}`);
  if (f.ledger.has(`${u.uid} ${u.name}`)) {
    say("managed already (in the uid ledger): the usual update");
    // an adopted account keeps the host's groups until `tighten: true`, which may come later
    if (u.adopt) extraGroupLines(u, f, say);
    return;
  }
  if (!u.adopt) return block(`the account exists and this program did not create it: add \`adopt: true\` to the entry to take it over`);
  const member = [...f.groups].filter(([, m]) => m.includes(u.name)).map(([g]) => g);
  const adds = u.groups.filter((g) => !member.includes(g));
  const home = f.homes.get(u.name);
  say(`adopt: uid ${u.uid}, password state and running processes stay${home ? `, home mode ${home.mode} stays` : ""}`);
  if (adds.length) say(`change: joins ${adds.join(", ")}`);
  extraGroupLines(u, f, say);
  if (resolveShell(acct.shell, f.mergedUsr) !== resolveShell(u.shell, f.mergedUsr)) say(`change: login shell ${acct.shell} -> ${u.shell}`);
  else if (acct.shell !== u.shell) say(`leave alone: login shell ${acct.shell} (the same program as ${u.shell})`);
  const keys = f.userKeys.get(u.name);
  if (keys)
    say(
      `change: sshd stops reading ~/.ssh/authorized_keys (${keys} lines); the roster's ${u.grants.sshKeys.length} keys go to /etc/ssh/authorized_keys.d/${u.name}`,
    );
  codeLines(u, f.code.get(u.name) ?? "none", say);
  const legacy = f.legacyStore.get(u.name);
  if (legacy)
    say(
      `migrate: ${legacy.snapshots} legacy snapshots into tmux-persist's store (tmux-persist import-legacy, before every save and restore; the legacy files stay); its ${legacy.tombstones} tombstones are read where they are`,
    );
}

/** What the first `up` does about the user's clones (components/scripts/clone.ts), from what ~/code is. */
function codeLines(u: UserPlan, code: CodeFact, say: (what: string) => void): void {
  if (!u.grants.forgejo) return;
  const c = u.code;
  if (c.layout === "single") {
    if (code === "single") say("leave alone: ~/code is a clone already (never re-cloned, reset or cleaned)");
    else if (code === "workspace")
      say("leave alone: ~/code holds ~/code/infra (the workspace layout) and is not cloned into; set codeLayout: workspace to match");
    else if (code === "dir") say("leave alone: ~/code exists and is no clone: nothing is cloned (move it aside for the clone)");
    else say("create: the infra repo cloned into ~/code");
  } else {
    if (code === "single") say("adopt: ~/code is a clone (the single layout), kept where it is; nothing is cloned into it (move it to ~/code/infra to switch)");
    else if (code === "workspace") say("leave alone: ~/code/infra is a clone already");
    else say(`create: the infra repo cloned into ~/code/infra${code === "dir" ? " (the rest of ~/code stays)" : ""}`);
    if (code !== "single") for (const r of c.repos) say(`create: ${r.repo} cloned into ~/${r.dir} unless it exists`);
  }
}

/** The whole plan. */
export function takeoverPlan(plan: Plan, f: HostFacts): TakeoverPlan {
  const lines: string[] = [];
  const blockers: string[] = [];
  for (const u of plan.users) userLines(u, f, lines, blockers);
  for (const o of plan.offboarded)
    if (f.passwd.has(o.name)) lines.push(`${o.name}: offboarded in the roster: the cut runs (login, keys, sudo, sessions); the home stays`);
  const names = new Set([...plan.users.map((u) => u.name), ...plan.offboarded.map((o) => o.name)]);
  for (const [n, a] of f.passwd) if (a.uid >= 1000 && a.uid < 60000 && !names.has(n)) lines.push(`${n}: not in the roster: left alone`);
  for (const u of LEGACY_RECONCILE_UNITS) {
    const s = f.units.get(u);
    if (s && s.enabled !== "not-found" && s.enabled !== "masked")
      lines.push(
        `host: retire: the legacy reconcile ${u} (${s.enabled}/${s.active}) stopped, its unit moved to ${LEGACY_DIR}/<time>/ and masked (workstations-legacy-rollback puts it back)`,
      );
  }
  for (const file of f.reconcileFiles)
    lines.push(
      `host: retire: ${file} (not the program's) moved to ${LEGACY_DIR}/<time>/ before the program installs its own (workstations-legacy-rollback puts it back)`,
    );
  if (f.tmuxPersistBin === OUR_TMUX_PERSIST) lines.push("host: tmux-persist is the program's");
  else {
    if (f.tmuxPersistBin !== "missing")
      lines.push(
        `host: retire: the legacy tmux-persist (${f.tmuxPersistBin}) and its units stopped and moved to ${LEGACY_DIR}/<time>/ (workstations-legacy-rollback puts them back)`,
      );
    lines.push(`host: install /usr/local/bin/tmux-persist -> ${OUR_TMUX_PERSIST} and its units`);
  }
  return { lines, blockers };
}
