/**
 * Helpers to build the bash scripts that run on the host through @pulumi/command.
 *
 * Every remote command is `bash -c '<script>'` with `set -euo pipefail`, so it behaves the
 * same whatever root's login shell is. Scripts never print secrets: stdout is stored in
 * state. Values are embedded with `shq` (single-quote escaping), which is exact for any
 * string without NUL.
 */
import { DEPLOYED_DIR, HOST_LOCK_FILE, ROOT_RUN_DIR, RUN_DIR } from "../hostContract";

/** Single-quotes a string for bash. */
export function shq(s: string): string {
  if (s.includes("\0")) throw new Error("shq: NUL byte in shell value");
  return "'" + s.replace(/'/g, `'\\''`) + "'";
}

/** Embeds exact bytes (any content) as a base64 literal decoded at run time. */
export function b64(s: string): string {
  return Buffer.from(s, "utf8").toString("base64");
}

/** Assigns shell variables from a record, one per line. */
export function vars(v: Record<string, string | number | boolean>): string {
  return Object.entries(v)
    .map(([k, x]) => `${k}=${shq(typeof x === "boolean" ? (x ? "1" : "0") : String(x))}`)
    .join("\n");
}

/**
 * Strict mode and root's own fixed environment (every script, every host-library run).
 * `lastpipe`: the last command of a pipeline runs in this shell, so `… | write_file F` counts
 * its change (in a subshell the count was lost: a changed limits drop-in was never followed by
 * daemon-reload, a T3 port change never restarted the server).
 */
export const STRICT = `set -euo pipefail
shopt -s lastpipe
export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
changes=0
changed() { echo "changed: $*"; changes=$((changes + 1)); }
die() { echo "error: $*" >&2; exit 1; }
`;

/**
 * One writer at a time for /etc/passwd, the uid ledger and the users index. The lock lives
 * in a root-only directory, mode 0600: `flock` works on a read-only open, so a lock any user
 * can open is a lock any user can hold (and with it stop every root verb, their own cut
 * included). It is fd 9; `as_user` closes it (and every other fd above 2) before a user's
 * process starts.
 */
export const HOST_LOCK = `install -d -m 0755 ${RUN_DIR}
install -d -m 0700 ${ROOT_RUN_DIR}
[ -e ${HOST_LOCK_FILE} ] || (umask 077; : >>${HOST_LOCK_FILE})
exec 9>>${HOST_LOCK_FILE}
flock -w 120 9 || die "another workstations script holds ${HOST_LOCK_FILE} for over 120s"
`;

/**
 * Running something as the user, from a root verb. `as_user` drops to the user ($UID_, its
 * own groups) with setpriv and a reset environment, closes every file descriptor above 2
 * first (no fd of root's, the lock included, reaches a user's process or anything it
 * forks), and bounds the time (`AS_USER_TIMEOUT`, default 600 s). `user_step` is for the
 * user-side part of a delete: whatever the user planted, it warns and returns 0, so a delete
 * the cut waits for can never fail because of the user (docs/CONTRACTS.md, "The cut").
 */
export const USER_FUNCS = `close_fds() {
  # (no redirection on the loop: bash would keep stderr's saved copy above 2, close it here,
  # and restore a closed stderr)
  local p fd
  for p in /proc/"$BASHPID"/fd/*; do
    fd=\${p##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
  done
}
as_user() {
  ( close_fds; exec timeout -k 10 "\${AS_USER_TIMEOUT:-600}" setpriv --reuid="$UID_" --regid="$UID_" --init-groups --reset-env -- "$@" )
}
user_step() {
  local what=$1 rc=0
  shift
  AS_USER_TIMEOUT=60 as_user "$@" || rc=$?
  [ "$rc" = 0 ] || echo "warning: $what of $NAME did not complete as the user (exit $rc); whatever is there is left as it is" >&2
  return 0
}
`;

/**
 * File helpers root's scripts use. `tracked`: each write and removal is also noted for the
 * run's record (the host library's verbs: ws_record, workstations-heal); the self-contained
 * remote scripts keep none (and stay small in the state).
 */
function fileFuncs(tracked: boolean): string {
  const track = (kind: string, v: string) => (tracked ? `track ${kind} "${v}"; ` : "");
  return `# write_file PATH MODE OWNER:GROUP: writes stdin to PATH atomically when it differs.
write_file() {
  local f=$1 mode=$2 owner=$3 t
  ${track("F", "$f")}t=$(mktemp "$(dirname "$f")/.ws.XXXXXX")
  cat >"$t"
  if [ -f "$f" ] && [ ! -L "$f" ] && cmp -s "$t" "$f" && [ "$(stat -c '%a %U:%G' "$f")" = "\${mode#0} $owner" ]; then
    rm -f "$t"; return 0
  fi
  chmod "$mode" "$t"; chown "$owner" "$t"; sync "$t" 2>/dev/null || true
  mv -f "$t" "$f"; changed "$f"
}
# remove_file PATH: removes PATH if present.
remove_file() { ${track("A", "$1")}if [ -e "$1" ] || [ -L "$1" ]; then rm -f "$1"; changed "removed $1"; fi; }
`;
}
export const FILE_FUNCS = fileFuncs(false);

/**
 * The host library's file helpers: FILE_FUNCS that note what they manage, and the record of a
 * verb's run for workstations-heal (README "Drift"): `track KIND PATH` notes a file (F), a
 * removed file (A) or a unit (U); `ws_record KEY PROGRAM ARG…` writes DEPLOYED_DIR/KEY: the
 * command that applies it again (each argument base64) and the state of what it manages now;
 * `ws_forget KEY` drops a record (a cut, a removal: nothing of it is applied again).
 */
export const LIB_FILE_FUNCS = `track() { if [ -n "\${WS_TRACK:-}" ]; then printf '%s\\t%s\\n' "$1" "$2" >>"$WS_TRACK"; fi; }
${fileFuncs(true)}ws_record() {
  local key=$1 t a kind p
  shift
  install -d -m 0700 ${DEPLOYED_DIR}
  t=$(mktemp ${DEPLOYED_DIR}/.rec.XXXXXX)
  for a in "$@"; do printf 'arg\\t%s\\n' "$(printf '%s' "$a" | base64 -w0)"; done >"$t"
  if [ -n "\${WS_TRACK:-}" ] && [ -s "$WS_TRACK" ]; then
    sort -u "$WS_TRACK" | while IFS=$'\\t' read -r kind p; do
      case "$kind" in
        F) if [ -f "$p" ] && [ ! -L "$p" ]; then printf 'file\\t%s\\t%s %s\\n' "$p" "$(sha256sum <"$p" | cut -c1-64)" "$(stat -c '%a %U:%G' "$p")"; fi ;;
        A) if [ ! -e "$p" ] && [ ! -L "$p" ]; then printf 'absent\\t%s\\n' "$p"; fi ;;
        U) printf 'unit\\t%s\\n' "$p" ;;
      esac
    done >>"$t"
  fi
  chmod 0600 "$t"; mv -f "$t" "${DEPLOYED_DIR}/$key"
}
ws_forget() { if [ -e "${DEPLOYED_DIR}/$1" ]; then rm -f "${DEPLOYED_DIR}/$1"; fi; }
`;

/** Common prelude of a self-contained remote script: strict mode, change reporting, the host-wide lock. */
export const PRELUDE = `${STRICT}umask 022
${HOST_LOCK}${FILE_FUNCS}`;

/** What a remote script's name may contain: printable ASCII without quotes or backslashes. */
export const SAFE_SCRIPT_NAME = /^[A-Za-z0-9 ._@+:,=/-]{1,200}$/;

/** Wraps a script body as the single remote command string the command provider runs. */
export function remoteScript(name: string, body: string): string {
  // The name goes on a comment line and into $0: a newline or control character there would
  // end the comment and run as code before `set -e`.
  if (!SAFE_SCRIPT_NAME.test(name)) throw new Error(`remoteScript: unsafe script name ${JSON.stringify(name)}`);
  const script = `# workstations: ${name}\n${PRELUDE}${body}\n`;
  return `bash -c ${shq(script)} ${shq("ws:" + name)}`;
}

/** Splits a remote command built by `remoteScript` back into the script text (for tests and shellcheck). */
export function unwrapScript(command: string): string {
  const m = /^bash -c '((?:[^']|'\\'')*)' '/s.exec(command);
  if (!m) throw new Error("not a remoteScript command");
  return m[1].replace(/'\\''/g, "'");
}

/** Parameters of one host-library verb call: NAME=value pairs (booleans become 1/0). */
export type Params = Readonly<Record<string, string | number | boolean>>;

/** A root verb that takes only the user (`NAME`, `UID_`). */
export function userVerb(name: string, body: string): Verb {
  return { name, root: true, params: ["NAME", "UID_"], body };
}

/** The parameters of a verb that needs only the user: `NAME` and `UID_`. */
export function userParams(u: { name: string; uid: number }): Params {
  return { NAME: u.name, UID_: u.uid };
}

/**
 * One verb of the host library (hostLib.ts): a static bash body, installed once on the host.
 * A user's remote command is `<library> <verb> NAME=value…` and carries only the parameters.
 */
export interface Verb {
  name: string;
  /** Runs as root under the host-wide lock (false: runs as the invoking user, no lock). */
  root: boolean;
  /** Exactly the parameters the body reads; each must be given, no other is accepted. */
  params: readonly string[];
  body: string;
  /**
   * Root verbs a deploy converges with: after it succeeds, a record of the call and of what it
   * manages (`DEPLOYED_DIR/<verb>@<NAME|host>`) for workstations-heal, which runs it again
   * between deploys. `active`: only while `STATE` is active (else the record is dropped: the
   * heal never repeats a cut).
   */
  record?: "always" | "active";
  /** The records (verbs, same NAME or the host) this verb ends: a cut, a removal. */
  forgets?: readonly string[];
}

/** `NAME=value` as one single-quoted shell word. */
export function paramArg(k: string, v: string | number | boolean): string {
  if (!/^[A-Z][A-Z0-9_]*$/.test(k)) throw new Error(`paramArg: bad parameter name ${JSON.stringify(k)}`);
  return shq(`${k}=${typeof v === "boolean" ? (v ? "1" : "0") : String(v)}`);
}
