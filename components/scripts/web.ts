/**
 * The web surfaces' identity files and T3 Code servers on the host (issue 22; README "Web
 * access"): the `web-apply` and `web-remove` verbs of the host library, run by the host-level
 * `WebAccess` resource (components/web/index.ts) whose input is the web plan.
 *
 * `web-apply` regenerates every file whole and atomically (temp file, rename), in the order
 * that fails closed: the identity map and the admins first (a removed identity is gone before
 * anything else happens), then the T3 ports (read back and assigned under the host lock by
 * t3Ports.ts), dispatch.json and the env files, the T3 units of users no longer planned
 * stopped and disabled, then the sudoers grants (checked alone with `visudo -c` on a temp file
 * before they replace the old ones, then with the whole configuration, the old file put back
 * if that fails), and last the planned users' T3 units enabled and started.
 *
 * It keeps its own command line as `WEB_APPLY` (root 0700), and the host's
 * `workstations-web.path` runs it again whenever one of the files changes: a hand edit is
 * put back within a second, and at boot, without waiting for the next `up` that changes
 * the plan (an `up` whose plan did not change runs nothing).
 */
import { adminsFile, sudoersFile, userMapFile, WebPlan } from "../plan/web";
import {
  NODE,
  PROXY_GROUP,
  ROOT_RUN_DIR,
  STATE_DIR,
  T3_BIN,
  T3_DIR,
  T3_DISPATCH,
  T3_FIRST_PORT,
  T3_PORT_LEDGER,
  TERMINAL_ACCOUNT,
  TTYD_ADMINS,
  TTYD_BIN,
  TTYD_SUDOERS,
  TTYD_USER_MAP,
  UNIT_DIR,
  UNITS,
  WEB_APPLY,
  WEB_PARAMS,
  WEB_TERMINAL_FLAG,
  WEB_STATE_DIR,
} from "../hostContract";
import { Params, shq, Verb } from "./shell";
import { T3_PORTS_JS } from "./t3Ports";

/**
 * Parameters of `web-apply`: the three files' contents, the T3 users (`user=sso`, in dispatch
 * order), and whether this host runs the optional web terminal (workstations:webTerminal).
 */
export function webApplyParams(web: WebPlan, terminal = false, account: string = TERMINAL_ACCOUNT): Params {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return {
    USER_MAP_B64: b64(userMapFile(web)),
    ADMINS_B64: b64(adminsFile(web)),
    SUDOERS_B64: b64(sudoersFile(web, account)),
    T3: web.t3.map((i) => `${i.user}=${i.sso}`).join(" "),
    ACCOUNT: account,
    TERMINAL: terminal,
    FROM: "up",
  };
}

const T3_UNIT = UNITS.t3Serve("");
const T3_GLOB = UNITS.t3Serve("*");

// T3: ports from the ledger, then dispatch.json and the env files; units of others stopped.
const T3_FILES = `declare -A PORT=()
t3_users=""
for e in $T3; do
  [[ "$e" =~ ^[a-z][a-z0-9_-]{0,31}=[A-Za-z0-9][A-Za-z0-9._-]{0,28}$ ]] || die "web-apply: T3 entry '$e' is not user=sso"
  getent passwd "\${e%%=*}" >/dev/null || die "web-apply: T3 user \${e%%=*} has no account on $host"
  t3_users="$t3_users \${e%%=*}"
done
ports=$(NODE_OPTIONS='' ${NODE} -e ${shq(T3_PORTS_JS)} -- ${T3_PORT_LEDGER} ${T3_DIR} ${T3_FIRST_PORT} $t3_users) ||
  die "web-apply: the T3 ports could not be assigned on $host (see above); the identity map and admins are written, nothing of T3 changed"
while IFS=' ' read -r kind a b; do
  case "$kind" in
    port) PORT[$a]=$b ;;
    changed:) changed "$a $b" ;;
    warning:) echo "warning: $a $b" >&2 ;;
  esac
done <<<"$ports"
for u in $t3_users; do [ -n "\${PORT[$u]:-}" ] || die "web-apply: no T3 port for $u on $host (${T3_PORT_LEDGER})"; done
for unit in $({ systemctl list-units --all --no-legend --plain '${T3_GLOB}' 2>/dev/null | awk '{print $1}'; find ${UNIT_DIR} -path '*.wants/${T3_GLOB}' -printf '%f\\n' 2>/dev/null; } | sort -u); do
  u=\${unit#t3-serve@}; u=\${u%.service}
  case " $t3_users " in *" $u "*) continue ;; esac
  if systemctl -q is-enabled "$unit" 2>/dev/null || systemctl -q is-active "$unit"; then systemctl disable --now "$unit" >/dev/null 2>&1 || true; changed "disabled $unit"; fi
done
json="{" sep=""
for e in $T3; do
  u=\${e%%=*}
  json+="$sep\\"\${e#*=}\\":{\\"os_user\\":\\"$u\\",\\"port\\":\${PORT[$u]}}" sep=","
done
printf '%s}\\n' "$json" | write_file ${T3_DISPATCH} 0644 root:root
declare -A RESTART=()
for u in $t3_users; do
  before=$changes
  printf 'T3_PORT=%s\\n' "\${PORT[$u]}" | write_file "${T3_DIR}/$u.env" 0600 root:root
  [ "$changes" = "$before" ] || RESTART[$u]=1
done
for f in ${T3_DIR}/*.env; do
  [ -e "$f" ] || continue
  u=$(basename "$f" .env)
  case " $t3_users " in *" $u "*) ;; *) remove_file "$f" ;; esac
done`;

// The sudoers grants: alone on a temp file, then the whole configuration; else the old file is back.
const SUDOERS = `t=$(mktemp ${ROOT_RUN_DIR}/ttyd-users.XXXXXX)
printf '%s' "$SUDOERS_B64" | base64 -d >"$t"
visudo -cqf "$t" >/dev/null || { rm -f "$t"; die "web-apply: the generated ${TTYD_SUDOERS} does not pass visudo -c on $host; it was not installed"; }
old=""
if [ -f ${TTYD_SUDOERS} ]; then old=$(mktemp ${ROOT_RUN_DIR}/ttyd-users.old.XXXXXX); cp -p ${TTYD_SUDOERS} "$old"; fi
write_file ${TTYD_SUDOERS} 0440 root:root <"$t"
rm -f "$t"
if ! visudo -cq >/dev/null 2>&1; then
  if [ -n "$old" ]; then mv -f "$old" ${TTYD_SUDOERS}; else rm -f ${TTYD_SUDOERS}; fi
  die "web-apply: sudo's configuration on $host does not pass visudo -c with the new ${TTYD_SUDOERS} (visudo -c says: $(visudo -c 2>&1 | grep -v ': parsed OK' | head -n 3 | tr '\\n' ' ')); the old file is back"
fi
rm -f "$old"
[ "$TERMINAL" = 1 ] || getent passwd "$ACCOUNT" >/dev/null || echo "warning: the web terminal's account $ACCOUNT does not exist on $host; its grants in ${TTYD_SUDOERS} apply once it does" >&2`;

// The planned users' T3 units, last: enabled, and started when T3 is installed.
const T3_UNITS = `t3ok=1
if [ -n "$t3_users" ]; then
  systemctl cat ${T3_UNIT} >/dev/null 2>&1 || die "web-apply: ${T3_UNIT} is not installed on $host (the host component installs it)"
  [ -x ${T3_BIN} ] || { t3ok=0; echo "warning: ${T3_BIN} is not installed on $host: the T3 units are enabled, and start once it is" >&2; }
fi
# One \`systemctl enable\` for every unit not enabled yet: each call reloads systemd's whole
# configuration (40 units one by one 6.1 s, in one call 0.2 s, on a test host with 300 units
# loaded); one call per user kept web-files under the host lock for 438 s at 250 users.
off=()
for u in $t3_users; do
  unit=${UNITS.t3Serve("$u")}
  systemctl -q is-enabled "$unit" 2>/dev/null || off+=("$unit")
done
if [ "\${#off[@]}" -gt 0 ]; then
  systemctl enable "\${off[@]}" >/dev/null 2>&1
  for unit in "\${off[@]}"; do changed "enabled $unit"; done
fi
for u in $t3_users; do
  [ "$t3ok" = 1 ] || break
  unit=${UNITS.t3Serve("$u")}
  if [ -n "\${RESTART[$u]:-}" ] && systemctl -q is-active "$unit"; then systemctl restart "$unit"; changed "restarted $unit (port \${PORT[$u]})"; fi
  systemctl -q is-active "$unit" || { systemctl start "$unit" && changed "started $unit"; } || echo "warning: $unit did not start on $host: journalctl -u $unit" >&2
done`;

// The optional web terminal: off first (before the files change), on last (after them).
const TERMINAL_OFF = `if [ "$TERMINAL" != 1 ] && [ -e ${WEB_TERMINAL_FLAG} ]; then
  systemctl disable --now ${UNITS.webTerminal} >/dev/null 2>&1 || true
  remove_file ${WEB_TERMINAL_FLAG}
fi`;
const TERMINAL_ON = `if [ "$TERMINAL" = 1 ]; then
  [ -x ${TTYD_BIN} ] || die "web-apply: the web terminal is on (workstations:webTerminal) but ${TTYD_BIN} is not installed on $host (Debian: apt-get install ttyd; bookworm has none, trixie's comes from sid); nothing of it started"
  getent group ${PROXY_GROUP} >/dev/null || die "web-apply: the reverse proxy's group ${PROXY_GROUP} does not exist on $host (install nginx first)"
  getent passwd "$ACCOUNT" >/dev/null || { useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$ACCOUNT"; changed "account $ACCOUNT"; }
  systemctl cat ${UNITS.webTerminal} >/dev/null 2>&1 || die "web-apply: ${UNITS.webTerminal} is not installed on $host (the host component installs it)"
  [ -e ${WEB_TERMINAL_FLAG} ] || { printf '# managed by workstations: the web terminal is on (workstations:webTerminal)\\n' | write_file ${WEB_TERMINAL_FLAG} 0644 root:root; }
  systemctl -q is-enabled ${UNITS.webTerminal} 2>/dev/null || { systemctl enable ${UNITS.webTerminal} >/dev/null 2>&1; changed "enabled ${UNITS.webTerminal}"; }
  systemctl -q is-active ${UNITS.webTerminal} || { systemctl start ${UNITS.webTerminal}; changed "started ${UNITS.webTerminal}"; }
fi`;

// This run's parameters, for the host's own put-back (workstations-web.path): WEB_APPLY runs
// web-apply with FROM=host, which reads them under the host lock (so a put-back that was
// waiting for the lock while an up ran applies that up's parameters, never older ones).
const KEEP = `if [ "$FROM" = up ]; then
  install -d -m 0700 ${WEB_STATE_DIR}
  for k in USER_MAP_B64 ADMINS_B64 SUDOERS_B64 T3 ACCOUNT TERMINAL; do printf '%s=%q\\n' "$k" "\${!k}"; done | write_file ${WEB_PARAMS} 0600 root:root
  printf '#!/bin/bash\\n# workstations: puts back the web identity files (workstations-web.service)\\nexec %q web-apply USER_MAP_B64= ADMINS_B64= SUDOERS_B64= T3= ACCOUNT= TERMINAL= FROM=host\\n' "$WS_LIB" |
    write_file ${WEB_APPLY} 0700 root:root
  systemctl -q is-enabled ${UNITS.webPath} 2>/dev/null || { systemctl enable ${UNITS.webPath} >/dev/null 2>&1 && changed "enabled ${UNITS.webPath}"; } || true
  systemctl -q is-active ${UNITS.webPath} || { systemctl start ${UNITS.webPath} && changed "started ${UNITS.webPath}"; } || true
fi`;

export const WEB_VERBS: readonly Verb[] = [
  {
    name: "web-apply",
    root: true,
    params: ["USER_MAP_B64", "ADMINS_B64", "SUDOERS_B64", "T3", "ACCOUNT", "TERMINAL", "FROM"],
    body: `host=$(hostname)
case "$FROM" in
  up) ;;
  host) [ -f ${WEB_PARAMS} ] || { echo "web access: no up has applied it on $host yet; nothing to put back"; return 0; }
    # shellcheck disable=SC1090 # written by the last web-apply of an up (KEEP), root 0600
    . ${WEB_PARAMS} ;;
  *) die "web-apply: FROM is up or host, not '$FROM'" ;;
esac
[[ "$ACCOUNT" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "web-apply: '$ACCOUNT' is not an account name"
install -d -m 0755 ${T3_DIR}
install -d -m 0700 ${STATE_DIR} ${ROOT_RUN_DIR}
${TERMINAL_OFF}
printf '%s' "$USER_MAP_B64" | base64 -d | write_file ${TTYD_USER_MAP} 0644 root:root
printf '%s' "$ADMINS_B64" | base64 -d | write_file ${TTYD_ADMINS} 0644 root:root
${T3_FILES}
${SUDOERS}
${T3_UNITS}
${TERMINAL_ON}
${KEEP}
echo "web access: $(grep -c '^[^#]' ${TTYD_USER_MAP} || true) identities, T3 for \${t3_users:- nobody}, terminal $([ "$TERMINAL" = 1 ] && echo on || echo off) (from $FROM) changes=$changes"`,
  },
  {
    name: "web-remove",
    root: true,
    params: [],
    body: `if [ -d /run/systemd/system ]; then
  for unit in ${UNITS.webPath} ${UNITS.webTerminal} $({ systemctl list-units --all --no-legend --plain '${T3_GLOB}' 2>/dev/null | awk '{print $1}'; find ${UNIT_DIR} -path '*.wants/${T3_GLOB}' -printf '%f\\n' 2>/dev/null; } | sort -u); do
    if systemctl -q is-enabled "$unit" 2>/dev/null || systemctl -q is-active "$unit"; then systemctl disable --now "$unit" >/dev/null 2>&1 || true; changed "disabled $unit"; fi
  done
fi
remove_file ${WEB_APPLY}
remove_file ${WEB_TERMINAL_FLAG}
remove_file ${WEB_PARAMS}
for f in ${TTYD_USER_MAP} ${TTYD_ADMINS} ${TTYD_SUDOERS} ${T3_DISPATCH} ${T3_DIR}/*.env; do remove_file "$f"; done
echo "web access removed (ports stay in ${T3_PORT_LEDGER}) changes=$changes"`,
  },
];
