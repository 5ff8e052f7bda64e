/**
 * Host-level scripts: preflight, installing one managed file, systemd units.
 */
import { USERS_GROUP } from "../plan";
import { DEPLOYED_DIR, KEYS_DIR, SSHD_DROPIN } from "../hostContract";
import { Params, remoteScript, vars, Verb } from "./shell";

export { SSHD_DROPIN };
export const SSHD_DROPIN_CONTENT = `# managed by workstations: roster users' keys come only from ${KEYS_DIR}/<user>
Match Group ${USERS_GROUP}
    AuthorizedKeysFile ${KEYS_DIR}/%u
`;

const SSHD_RELOAD = `
reload_sshd() {
  sshd -t || return 1
  if [ -d /run/systemd/system ]; then systemctl reload ssh.service 2>/dev/null || systemctl reload sshd.service; fi
  # sshd re-executes on reload and briefly closes its listener: wait until it listens again,
  # so the next command's connection is not refused.
  sleep 1
  local _
  for _ in $(seq 1 50); do ss -Hltnp 2>/dev/null | grep -q '"sshd"' && return 0; sleep 0.1; done
  echo "warning: sshd is not listening 6s after reload" >&2
}`;

/**
 * Checks the host can run the program's scripts and lays down the shared directories.
 * @param shells the roster's login shells; each must be installed (executable and listed in
 *   /etc/shells) before any account is touched. Only the set of shells is an input, so
 *   onboarding a user with a shell already in use does not change the preflight.
 */
export function preflightScript(shells: readonly string[] = []): string {
  const body = `${vars({ DROPIN_B64: Buffer.from(SSHD_DROPIN_CONTENT).toString("base64"), SHELLS: [...new Set(shells)].sort().join(" ") })}
${SSHD_RELOAD}
host=$(hostname)
for sh in $SHELLS; do
  { [ -x "$sh" ] && grep -qxF "$sh" /etc/shells; } || die "login shell $sh (a shell in roster.yaml) is not installed on $host (not executable or not in /etc/shells); install it (Debian: apt-get install $(basename "$sh")) or change the users' shell in roster.yaml"
done
for c in useradd usermod userdel getent setpriv flock visudo tar sha256sum base64 sshd ss; do
  command -v "$c" >/dev/null || die "$c is missing on $host; install it (Debian: passwd, util-linux, sudo, tar, coreutils, openssh-server, iproute2)"
done
[ -d /run/systemd/system ] || die "$host does not run systemd as PID 1; the units need it"
command -v node >/dev/null || die "node is missing on $host; the host scripts need Node >= 18 (apt-get install nodejs)"
nv=$(node -p 'process.versions.node.split(".")[0]')
[ "$nv" -ge 18 ] || die "node $nv on $host is too old; the host scripts need Node >= 18"
install -d -m 0755 /etc/workstations /etc/workstations/users.d /usr/local/lib/workstations ${KEYS_DIR}
install -d -m 0700 /var/lib/workstations /var/lib/workstations/archives
install -d -m 0711 /var/lib/tmux-persist
getent group ${USERS_GROUP} >/dev/null || { groupadd --system ${USERS_GROUP}; changed "group ${USERS_GROUP}"; }
if ! [ -f ${SSHD_DROPIN} ] || ! cmp -s <(printf '%s' "$DROPIN_B64" | base64 -d) ${SSHD_DROPIN}; then
  printf '%s' "$DROPIN_B64" | base64 -d | write_file ${SSHD_DROPIN} 0644 root:root
  reload_sshd || { rm -f ${SSHD_DROPIN}; die "sshd rejected ${SSHD_DROPIN} on $host; removed it again"; }
fi
echo "preflight $host ok (node $nv) changes=$changes"`;
  return remoteScript("preflight", body);
}

/** Undo of preflight: remove the sshd drop-in (users fall back to ~/.ssh/authorized_keys). Data dirs stay. */
export function preflightDeleteScript(): string {
  return remoteScript(
    "preflight delete",
    `${SSHD_RELOAD}
if [ -e ${SSHD_DROPIN} ]; then rm -f ${SSHD_DROPIN}; reload_sshd || true; changed "removed ${SSHD_DROPIN}"; fi
echo "preflight removed changes=$changes"`,
  );
}

export interface InstalledFile {
  /** Absolute path on the host. */
  path: string;
  mode: string;
  /** Optional symlink to create pointing at `path` (e.g. /usr/local/bin/NAME). */
  link?: string;
}

/** Create/update: writes stdin to the file when it differs. */
export function installFileScript(f: InstalledFile): string {
  const body = `${vars({ F: f.path, MODE: f.mode, LINK: f.link ?? "" })}
install -d -m 0755 "$(dirname "$F")"
write_file "$F" "$MODE" root:root
if [ -n "$LINK" ] && [ "$(readlink "$LINK" 2>/dev/null || true)" != "$F" ]; then ln -sfn "$F" "$LINK"; changed "$LINK"; fi
echo "file $F changes=$changes"`;
  return remoteScript(`install ${f.path}`, body);
}

/** Delete: removes the file (and its link), and its directory when that is left empty. */
export function removeFileScript(f: InstalledFile): string {
  const body = `${vars({ F: f.path, LINK: f.link ?? "" })}
[ -z "$LINK" ] || [ "$(readlink "$LINK" 2>/dev/null || true)" != "$F" ] || remove_file "$LINK"
remove_file "$F"
d=$(dirname "$F")
while [ "$d" != / ] && rmdir "$d" 2>/dev/null; do d=$(dirname "$d"); done
echo "removed $F changes=$changes"`;
  return remoteScript(`remove ${f.path}`, body);
}

/**
 * Reloads systemd after unit files changed and enables the host-wide units, and records them
 * for workstations-heal (`units@host`: units only, which it enables and starts again the same
 * way when one drifts).
 */
export function unitsApplyScript(unitsDigest: string, enable: string[]): string {
  const body = `${vars({ DIGEST: unitsDigest, ENABLE: enable.join(" ") })}
systemctl daemon-reload
for u in $ENABLE; do
  systemctl -q is-enabled "$u" 2>/dev/null || { systemctl enable "$u" >/dev/null 2>&1; changed "enabled $u"; }
  case "$u" in *.timer|*.socket) systemctl -q is-active "$u" || { systemctl start "$u"; changed "started $u"; } ;; esac
done
install -d -m 0700 ${DEPLOYED_DIR}
t=$(mktemp ${DEPLOYED_DIR}/.rec.XXXXXX)
printf 'unit\\t%s\\n' $ENABLE >"$t"
mv -f "$t" ${DEPLOYED_DIR}/units@host
echo "units $DIGEST changes=$changes"`;
  return remoteScript("systemd units", body);
}

export function unitsDeleteScript(enable: string[]): string {
  const body = `${vars({ ENABLE: enable.join(" ") })}
for u in $ENABLE; do
  if systemctl -q is-enabled "$u" 2>/dev/null || systemctl -q is-active "$u"; then systemctl disable --now "$u" >/dev/null 2>&1 || true; changed "disabled $u"; fi
done
systemctl daemon-reload
rm -f ${DEPLOYED_DIR}/units@host
echo "units removed changes=$changes"`;
  return remoteScript("systemd units delete", body);
}

/** Parameters of `units-user`: enable the planned timers of one user, disable the others of that user. */
export function userUnitsParams(name: string, timers: readonly string[]): Params {
  return { NAME: name, TIMERS: timers.join(" ") };
}

export const UNIT_VERBS: readonly Verb[] = [
  {
    name: "units-user",
    root: true,
    record: "always",
    params: ["NAME", "TIMERS"],
    body: `for t in $TIMERS; do
  systemctl cat "$t" >/dev/null 2>&1 || die "unit $t is not installed on $(hostname); the host component installs its template"
  systemctl -q is-enabled "$t" 2>/dev/null || { systemctl enable "$t" >/dev/null 2>&1; changed "enabled $t"; }
  systemctl -q is-active "$t" || { systemctl start "$t"; changed "started $t"; }
  track U "$t"
done
for t in $(systemctl list-units --all --no-legend --plain "*@$NAME.timer" 2>/dev/null | awk '{print $1}'); do
  case " $TIMERS " in *" $t "*) ;; *)
    if systemctl -q is-enabled "$t" 2>/dev/null || systemctl -q is-active "$t"; then systemctl disable --now "$t" >/dev/null 2>&1 || true; changed "disabled $t"; fi ;;
  esac
done
echo "units of $NAME: \${TIMERS:-none} changes=$changes"`,
  },
];
