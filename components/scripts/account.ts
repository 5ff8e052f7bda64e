/**
 * Account lifecycle verbs of the host library (SPEC §3.1): onboard/update, suspend, the
 * offboarding cut and the approved purge. Each is idempotent: a second run prints no
 * `changed:` line, and a run cut off halfway converges on the next run. The bodies are
 * static (installed once on the host, see hostLib.ts); a user's command carries only the
 * parameters built here.
 */
import { OffboardedPlan, UserPlan, USERS_GROUP } from "../plan";
import { ALLOWED_SYSTEM_GROUPS } from "../roster/schema";
import { Params, Verb } from "./shell";

import {
  ARCHIVE_DIR,
  ETC_DIR,
  GRANTED_DIR,
  KEYS_DIR,
  LEDGER,
  STATE_DIR,
  SUDOERS_DIR,
  TMUX_STATE_DIR,
  USERS_DIR,
  USERS_INDEX,
  USERS_INDEX_VERSION,
} from "../hostContract";
import { usersEntry } from "../plan/usersIndex";

export { ARCHIVE_DIR, KEYS_DIR, LEDGER, USERS_DIR, USERS_INDEX, usersEntry };

/** Shell functions shared by the account verbs (part of the host library). */
export const ACCOUNT_FUNCS = `
rebuild_index() {
  local t
  t=$(mktemp ${ETC_DIR}/.users.XXXXXX)
  {
    printf '{"version":${USERS_INDEX_VERSION},"users":['
    find ${USERS_DIR} -maxdepth 1 -name '*.json' -type f -print0 | sort -z | xargs -0 -r cat | paste -sd, | tr -d '\\n'
    printf ']}\\n'
  } >"$t"
  chmod 0644 "$t"
  if cmp -s "$t" ${USERS_INDEX}; then rm -f "$t"; else mv -f "$t" ${USERS_INDEX}; changed "${USERS_INDEX}"; fi
}
user_exists() { getent passwd "$NAME" >/dev/null; }
kill_sessions() {
  # End every process of the user, its sessions, units and scopes included. pgrep then
  # pkill misses a process that forks and lets its parent exit, again and again; kill(-1)
  # sent AS THE USER reaches every process of the uid in one pass of the kernel's task list,
  # atomically against fork (a fork racing it fails with the fatal signal pending).
  local _
  if [ -d /run/systemd/system ]; then
    loginctl terminate-user "$NAME" 2>/dev/null || true
    systemctl stop "user@$UID_.service" 2>/dev/null || true
    stop_user_scopes
  fi
  # kill(-1) is sent at least once whatever pgrep says: pgrep walks /proc and can miss a
  # process that forks and exits between two of its reads (seen: one fork-hopper survived a
  # suspend under load, when an empty first pgrep meant no kill was sent at all). After one
  # kill(-1) nothing of the uid that existed is left; pgrep then only confirms.
  if pgrep -u "$UID_" >/dev/null 2>&1 || pgrep -U "$UID_" >/dev/null 2>&1; then changed "processes of $NAME killed"; fi
  for _ in $(seq 1 50); do
    as_user /bin/bash -c 'kill -KILL -1' 2>/dev/null || true
    sleep 0.2
    if ! pgrep -u "$UID_" >/dev/null 2>&1 && ! pgrep -U "$UID_" >/dev/null 2>&1; then return 0; fi
  done
  die "processes of $NAME (uid $UID_) still running after 10s: $(pgrep -a -u "$UID_" | head -n 5 | tr '\n' ';')"
}
# The transient scopes tmux-persist starts the user's servers in (the user's slice, named
# tmux-persist-<user>-<base36 time>.scope): stopped, so nothing of the user's is left there.
stop_user_scopes() {
  local u rest
  for u in $(systemctl list-units --all --no-legend --plain --type=scope 'tmux-persist-*.scope' 2>/dev/null | awk '{print $1}'); do
    case "$u" in "tmux-persist-$NAME-"*.scope) ;; *) continue ;; esac
    rest=\${u#"tmux-persist-$NAME-"}
    rest=\${rest%.scope}
    [[ "$rest" =~ ^[0-9a-z]+$ ]] || continue # another user whose name starts with NAME-
    systemctl kill --signal=KILL "$u" 2>/dev/null || true
    systemctl stop "$u" 2>/dev/null || true
    changed "stopped $u"
  done
}
stop_user_units() {
  [ -d /run/systemd/system ] || return 0
  local u
  for u in $(systemctl list-units --all --no-legend --plain "*@$NAME.timer" "*@$NAME.service" 2>/dev/null | awk '{print $1}'); do
    if systemctl -q is-active "$u" || systemctl -q is-enabled "$u" 2>/dev/null; then
      systemctl disable --now "$u" >/dev/null 2>&1 || true; changed "stopped $u"
    fi
  done
  while IFS= read -r u; do
    systemctl disable "$(basename "$u")" >/dev/null 2>&1 || rm -f "$u"; changed "disabled $(basename "$u")"
  done < <(find /etc/systemd/system -path "*.wants/*@$NAME.timer" 2>/dev/null)
}
set_linger() {
  [ -d /run/systemd/system ] || return 0
  if [ "$1" = 1 ] && [ ! -e "/var/lib/systemd/linger/$NAME" ]; then loginctl enable-linger "$NAME"; changed "linger on"; fi
  if [ "$1" = 0 ] && [ -e "/var/lib/systemd/linger/$NAME" ]; then loginctl disable-linger "$NAME"; changed "linger off"; fi
}
# No login: the account expired and its password locked.
cut_login() {
  if [ "$(getent shadow "$NAME" | cut -d: -f8)" != "1" ]; then usermod --expiredate 1 "$NAME"; changed "account expired"; fi
  if ! passwd -S "$NAME" | awk '{exit !($2=="L")}'; then usermod --lock "$NAME"; changed "password locked"; fi
}
# The reversible cut: no login, no keys, no sudo, no sessions, no timers. Home untouched.
# adopted_groups CURRENT: an adopted account's groups, additively. The roster's groups are
# added; a group is removed only when this program added it (GRANTED_DIR/NAME lists those)
# and the roster no longer names it; every other group the account has stays.
adopted_groups() {
  local cur=",$1," want=",$GROUPS_," f="${GRANTED_DIR}/$NAME" g kept=""
  install -d -m 0700 ${GRANTED_DIR}
  for g in \${GROUPS_//,/ }; do
    case "$cur" in *",$g,"*) ;; *) usermod -aG "$g" "$NAME"; changed "group $g added (adopted: the account's other groups stay)"; kept+=" $g" ;; esac
  done
  if [ -f "$f" ]; then
    while read -r g; do
      [ -n "$g" ] || continue
      case "$want" in
        *",$g,"*) kept+=" $g" ;;
        *) case "$cur" in *",$g,"*) gpasswd -d "$NAME" "$g" >/dev/null; changed "group $g removed (this program granted it; the roster no longer does)" ;; esac ;;
      esac
    done <"$f"
  fi
  printf '%s\n' $kept | sort -u | sed '/^$/d' | write_file "$f" 0600 root:root
}

cut_access() {
  user_exists || return 0
  cut_login
  printf '' | write_file "${KEYS_DIR}/$NAME" 0644 root:root
  remove_file "${SUDOERS_DIR}/ws-$NAME"
  set_linger 0
  stop_user_units
  kill_sessions
}
`;

/** Parameters of `account-apply`: converge the account to the plan (create and update). */
export function accountApplyParams(u: UserPlan): Params {
  const g = u.grants;
  const keys = g.sshKeys.map((k) => k + "\n").join("");
  return {
    NAME: u.name,
    UID_: u.uid,
    SHELL_: u.shell,
    STATE: u.state,
    HOME_: u.home,
    GROUPS_: u.groups.join(","),
    LOGIN: g.login,
    SUDO: g.sudo,
    LINGER: g.linger,
    KEYS_B64: Buffer.from(keys).toString("base64"),
    ENTRY: usersEntry(u),
    ADOPT: u.adopt,
    TIGHTEN: u.tighten,
  };
}

/** Parameters of `account-cut` (delete of the account resource): the offboarding cut. */
export function accountCutParams(u: Pick<UserPlan, "name" | "uid">): Params {
  return { NAME: u.name, UID_: u.uid };
}

/** Parameters of `purge`: cut, archive the home and verify it, then delete the account. */
export function purgeParams(o: OffboardedPlan): Params {
  return { NAME: o.name, UID_: o.uid, HOME_: o.home, APPROVED_BY: o.purge?.approvedBy ?? "", APPROVED_ON: o.purge?.approvedOn ?? "" };
}

export const ACCOUNT_VERBS: readonly Verb[] = [
  {
    name: "account-apply",
    root: true,
    record: "active",
    params: ["NAME", "UID_", "SHELL_", "STATE", "HOME_", "GROUPS_", "LOGIN", "SUDO", "LINGER", "KEYS_B64", "ENTRY", "ADOPT", "TIGHTEN"],
    body: `SAFE_SYSTEM_GROUPS='${[...ALLOWED_SYSTEM_GROUPS].sort().join(" ")}'
install -d -m 0755 ${ETC_DIR} ${USERS_DIR} ${KEYS_DIR}
install -d -m 0700 ${STATE_DIR}
[ -e ${LEDGER} ] || install -m 0600 /dev/null ${LEDGER}
host=$(hostname)

# Pinned uid: never reused, never silently changed.
prev=$(awk -v u="$UID_" '$1 == u { print $2; exit }' ${LEDGER})
[ -z "$prev" ] || [ "$prev" = "$NAME" ] || die "uid $UID_ was used by '$prev' on $host (${LEDGER}); uids are never reused: give $NAME another uid in roster.yaml"
owner=$(getent passwd "$UID_" | cut -d: -f1 || true)
[ -z "$owner" ] || [ "$owner" = "$NAME" ] || die "uid $UID_ belongs to '$owner' on $host; give $NAME a free uid in roster.yaml"
if user_exists; then
  cur=$(id -u "$NAME")
  [ "$cur" = "$UID_" ] || die "$NAME exists on $host with uid $cur but roster.yaml pins $UID_; fix the roster or migrate the account by hand"
  # An account this program did not create (not in the ledger) is never taken over by
  # default: a roster entry naming it would otherwise hand it the entry's keys, groups and
  # sudo, and a later purge would treat it as the program's.
  grep -qx "$UID_ $NAME" ${LEDGER} || [ "$ADOPT" = 1 ] || die "account $NAME (uid $cur) already exists on $host and this program did not create it (not in ${LEDGER}); to take it over, set adopt: true on its roster entry (README 'Adopting an existing account'); nothing changed"
fi
gowner=$(getent group "$UID_" | cut -d: -f1 || true)
[ -z "$gowner" ] || [ "$gowner" = "$NAME" ] || die "gid $UID_ belongs to group '$gowner' on $host; $NAME needs gid = uid"
{ [ -x "$SHELL_" ] && grep -qxF "$SHELL_" /etc/shells; } || die "login shell $SHELL_ of $NAME is not installed on $host (not executable or not in /etc/shells); install it or change shell in roster.yaml"
# Extra groups (docs: README "Roster rules"): a short allow-list of harmless system groups,
# otherwise a team group, which on the host must be a real non-system group (gid >= 1000)
# and nobody's personal group. Checked before anything changes.
for g in \${GROUPS_//,/ }; do
  [ "$g" = ${USERS_GROUP} ] && continue
  ent=$(getent group "$g") || die "group '$g' (roster groups of $NAME) does not exist on $host; create it there or remove it from roster.yaml"
  gid=$(printf '%s' "$ent" | cut -d: -f3)
  case " $SAFE_SYSTEM_GROUPS " in *" $g "*) continue ;; esac
  [ "$gid" -ge 1000 ] && [ "$gid" -lt 60000 ] || die "group '$g' (roster groups of $NAME) has system gid $gid on $host; only team groups (gid 1000-59999) or $SAFE_SYSTEM_GROUPS may be granted; remove it from roster.yaml"
  pu=$(getent passwd "$gid" | cut -d: -f1 || true)
  [ -z "$pu" ] || die "group '$g' (gid $gid, roster groups of $NAME) is the personal group of user '$pu' on $host; it would open that user's home; remove it from roster.yaml"
  if getent passwd "$g" >/dev/null; then die "group '$g' (roster groups of $NAME) is named after user '$g' on $host (a personal group); remove it from roster.yaml"; fi
done
getent group ${USERS_GROUP} >/dev/null || { groupadd --system ${USERS_GROUP}; changed "group ${USERS_GROUP}"; }
# Reserve the uid in the ledger before the account exists: every account this program
# creates is in the ledger, even when a run is cut off right after useradd.
grep -qx "$UID_ $NAME" ${LEDGER} || { echo "$UID_ $NAME" >>${LEDGER}; changed "uid ledger"; }

getent group "$NAME" >/dev/null || { groupadd -g "$UID_" "$NAME"; changed "group $NAME"; }
if ! user_exists; then
  useradd -u "$UID_" -g "$UID_" -G "$GROUPS_" -s "$SHELL_" -d "$HOME_" -m -k /etc/skel "$NAME"
  changed "user $NAME created"
else
  # The shell by what it resolves to: /bin/zsh is /usr/bin/zsh on a merged-/usr host.
  cur_shell=$(getent passwd "$NAME" | cut -d: -f7)
  [ "$(readlink -f -- "$cur_shell")" = "$(readlink -f -- "$SHELL_")" ] || { usermod -s "$SHELL_" "$NAME"; changed "shell $SHELL_"; }
  [ "$(getent passwd "$NAME" | cut -d: -f6)" = "$HOME_" ] || die "$NAME has home $(getent passwd "$NAME" | cut -d: -f6) on $host, expected $HOME_; move it by hand"
  cur_groups=$(id -nG "$NAME" | tr ' ' '\\n' | grep -vx "$NAME" | sort | paste -sd, || true)
  if [ "$ADOPT" = 1 ] && [ "$TIGHTEN" != 1 ]; then
    adopted_groups "$cur_groups"
  else
    [ "$cur_groups" = "$GROUPS_" ] || { usermod -G "$GROUPS_" "$NAME"; changed "groups $GROUPS_"; }
    [ "$ADOPT" != 1 ] || printf '%s\n' \${GROUPS_//,/ } | write_file "${GRANTED_DIR}/$NAME" 0600 root:root
  fi
fi
if [ ! -d "$HOME_" ]; then
  # Built in a root-only staging dir and renamed into place, so the user never sees a
  # half-made home and cannot plant a symlink for root's copy to follow. (skel holds a
  # root-owned 0600 file the user could not read, so the copy itself runs as root.)
  t=$(mktemp -d "$(dirname "$HOME_")/.ws-home.XXXXXX")
  cp -a /etc/skel/. "$t"/
  chown -R --no-dereference "$UID_:$UID_" "$t"
  chmod 0750 "$t"
  mv -T "$t" "$HOME_"
  changed "home $HOME_ recreated from skel"
fi
if [ "$ADOPT" = 1 ] && [ "$TIGHTEN" != 1 ]; then
  # An adopted home keeps its owner and mode (tighten: true makes it 0750 like the others).
  [ "$(stat -c %u "$HOME_")" = "$UID_" ] || echo "warning: the home $HOME_ of adopted $NAME is owned by uid $(stat -c %u "$HOME_") on $host, not $UID_; left as it is (the program's files in it are written as $NAME)"
else
  [ "$(stat -c '%a %u:%g' "$HOME_")" = "750 $UID_:$UID_" ] || { chown "$UID_:$UID_" "$HOME_"; chmod 0750 "$HOME_"; changed "home mode"; }
fi

# Each grant as the plan decided it for the user's state (components/plan.ts \`grants\`):
# a suspended user arrives with LOGIN=0, no keys, SUDO=0 and LINGER=0.
if [ "$LOGIN" = 1 ]; then
  if [ -n "$(getent shadow "$NAME" | cut -d: -f8)" ]; then usermod --expiredate '' "$NAME"; changed "account unexpired"; fi
else
  cut_login
fi
printf '%s' "$KEYS_B64" | base64 -d | write_file "${KEYS_DIR}/$NAME" 0644 root:root
if [ "$SUDO" = 1 ]; then
  t=$(mktemp)
  printf '# managed by workstations (roster role/overrides)\\n%s ALL=(ALL:ALL) NOPASSWD: ALL\\n' "$NAME" >"$t"
  visudo -cqf "$t" || { rm -f "$t"; die "generated sudoers for $NAME does not validate"; }
  write_file "${SUDOERS_DIR}/ws-$NAME" 0440 root:root <"$t"; rm -f "$t"
else
  remove_file "${SUDOERS_DIR}/ws-$NAME"
fi
set_linger "$LINGER"
# The users index first: the host agents (tmux-persist's restore, the renewal timer) read
# the new state before the sessions end, so none starts anything for a suspended user.
printf '%s\\n' "$ENTRY" | write_file "${USERS_DIR}/$NAME.json" 0644 root:root
rebuild_index
[ "$LOGIN" = 1 ] || { stop_user_units; kill_sessions; }
echo "account $NAME uid=$UID_ state=$STATE changes=$changes"`,
  },
  {
    name: "account-cut",
    root: true,
    forgets: ["account-apply", "home-apply", "units-user"],
    params: ["NAME", "UID_"],
    body: `install -d -m 0755 ${ETC_DIR} ${USERS_DIR}
remove_file "${USERS_DIR}/$NAME.json"
rebuild_index
cut_access
echo "cut $NAME uid=$UID_ changes=$changes (account and home kept)"`,
  },
  {
    name: "purge",
    root: true,
    forgets: ["account-apply", "home-apply", "units-user", "limits-apply"],
    params: ["NAME", "UID_", "HOME_", "APPROVED_BY", "APPROVED_ON"],
    body: `[ -n "$APPROVED_BY" ] || die "purge of $NAME has no approval; add purge.approvedBy to its roster entry"
host=$(hostname)
if ! user_exists && [ ! -e "$HOME_" ]; then echo "purge $NAME: already purged"; exit 0; fi
# Identity before anything is cut, archived or deleted: the account must be the one this
# program created for this roster entry (same uid, recorded in the ledger), and the home
# must belong to it. Otherwise stop and change nothing.
[ -f ${LEDGER} ] && grep -qx "$UID_ $NAME" ${LEDGER} || die "purge of $NAME refused: '$UID_ $NAME' is not in ${LEDGER} on $host, so this program did not create that account; nothing changed"
if user_exists; then
  cur=$(id -u "$NAME")
  [ "$cur" = "$UID_" ] || die "purge of $NAME refused: the account on $host has uid $cur but roster.yaml pins $UID_; nothing changed"
fi
if getent group "$NAME" >/dev/null; then
  gcur=$(getent group "$NAME" | cut -d: -f3)
  [ "$gcur" = "$UID_" ] || die "purge of $NAME refused: group $NAME on $host has gid $gcur, expected $UID_; nothing changed"
fi
if [ -e "$HOME_" ] || [ -L "$HOME_" ]; then
  [ -d "$HOME_" ] && [ ! -L "$HOME_" ] || die "purge of $NAME refused: $HOME_ on $host is not a directory; nothing changed"
  hown=$(stat -c %u "$HOME_")
  [ "$hown" = "$UID_" ] || die "purge of $NAME refused: $HOME_ on $host is owned by uid $hown, not $UID_; nothing changed"
fi
install -d -m 0700 ${ARCHIVE_DIR}
cut_access
if [ -e "$HOME_" ]; then
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  archive="${ARCHIVE_DIR}/$NAME-$UID_-$stamp.tar.gz"
  parent=$(dirname "$HOME_"); base=$(basename "$HOME_")
  tar --numeric-owner --acls --xattrs -cpzf "$archive.partial" -C "$parent" "$base"
  # Verify before anything is deleted: the archive must compare equal to the home.
  tar --numeric-owner -dzf "$archive.partial" -C "$parent" >/dev/null || { rm -f "$archive.partial"; die "archive of $HOME_ does not match the home; nothing deleted"; }
  chmod 0600 "$archive.partial"; sync
  mv "$archive.partial" "$archive"
  sha256sum "$archive" >"$archive.sha256"
  changed "archived $HOME_ to $archive"
fi
rm -rf "${TMUX_STATE_DIR}/$NAME"
remove_file "${USERS_DIR}/$NAME.json"
remove_file "${KEYS_DIR}/$NAME"
rebuild_index
if user_exists; then userdel "$NAME"; changed "user $NAME deleted"; fi
if getent group "$NAME" >/dev/null; then groupdel "$NAME"; changed "group $NAME deleted"; fi
if [ -e "$HOME_" ]; then rm -rf --one-file-system "$HOME_"; changed "home removed"; fi
echo "purge $NAME uid=$UID_ approved by $APPROVED_BY on $APPROVED_ON changes=$changes (uid stays reserved in ${LEDGER})"`,
  },
];
