/**
 * Helpers to build the bash scripts that run on the host through @pulumi/command.
 *
 * Every remote command is `bash -c '<script>'` with `set -euo pipefail`, so it behaves the
 * same whatever root's login shell is. Scripts never print secrets: stdout is stored in
 * state. Values are embedded with `shq` (single-quote escaping), which is exact for any
 * string without NUL.
 */
import { RUN_DIR } from "../hostContract";

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

/** Strict mode and root's own fixed environment (every script, every host-library run). */
export const STRICT = `set -euo pipefail
export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
changes=0
changed() { echo "changed: $*"; changes=$((changes + 1)); }
die() { echo "error: $*" >&2; exit 1; }
`;

/** One writer at a time for /etc/passwd, the uid ledger and the users index. */
export const HOST_LOCK = `install -d -m 0755 ${RUN_DIR}
exec 9>${RUN_DIR}/lock
flock -w 120 9 || die "another workstations script holds ${RUN_DIR}/lock for over 120s"
`;

/** File helpers root's scripts use. */
export const FILE_FUNCS = `# write_file PATH MODE OWNER:GROUP: writes stdin to PATH atomically when it differs.
write_file() {
  local f=$1 mode=$2 owner=$3 t
  t=$(mktemp "$(dirname "$f")/.ws.XXXXXX")
  cat >"$t"
  if [ -f "$f" ] && [ ! -L "$f" ] && cmp -s "$t" "$f" && [ "$(stat -c '%a %U:%G' "$f")" = "\${mode#0} $owner" ]; then
    rm -f "$t"; return 0
  fi
  chmod "$mode" "$t"; chown "$owner" "$t"; sync "$t" 2>/dev/null || true
  mv -f "$t" "$f"; changed "$f"
}
# remove_file PATH: removes PATH if present.
remove_file() { if [ -e "$1" ] || [ -L "$1" ]; then rm -f "$1"; changed "removed $1"; fi; }
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
}

/** `NAME=value` as one single-quoted shell word. */
export function paramArg(k: string, v: string | number | boolean): string {
  if (!/^[A-Z][A-Z0-9_]*$/.test(k)) throw new Error(`paramArg: bad parameter name ${JSON.stringify(k)}`);
  return shq(`${k}=${typeof v === "boolean" ? (v ? "1" : "0") : String(v)}`);
}
