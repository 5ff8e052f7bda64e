/**
 * Home and config inheritance (SPEC §3.2, §3.3): ~/.claude symlinks to the shared base,
 * ~/.claude/settings.json at 0600, the header-guarded ~/.codex/AGENTS.md mirror and the
 * managed start-claude.sh.
 *
 * Everything inside the home runs AS THE USER (setpriv), so a symlink the user planted can
 * never make root write or chmod a file outside what the user may touch anyway. The managed
 * content comes from the host's copies (MIRROR_FILE, LAUNCHER_FILE), checked against the
 * digests in the user's command.
 */
import * as crypto from "crypto";
import { CLAUDE_BASE, CLAUDE_BASE_LINKS, UserPlan } from "../plan";
import { LAUNCHER_FILE, MIRROR_FILE, SHARE_DIR } from "../hostContract";
import { Params, shq, Verb } from "./shell";

/** First line of a managed AGENTS.md mirror; the hash is of everything after that line. */
export const MIRROR_HEADER_PREFIX = "<!-- managed-by: workstations (mirror of the managed claudeMd; edit it and this file is left alone) sha256:";

export function mirrorContent(claudeMd: string): string {
  const body = claudeMd.endsWith("\n") ? claudeMd : claudeMd + "\n";
  const sum = crypto.createHash("sha256").update(body).digest("hex");
  return `${MIRROR_HEADER_PREFIX}${sum} -->\n${body}`;
}

export interface HomeInputs {
  /** The managed claudeMd (from managed-settings.json). */
  claudeMd: string;
  /** The launcher content. */
  startClaude: string;
}

/** Host copies of the managed home files, installed by the host component (bundle.ts). */
export { LAUNCHER_FILE, MIRROR_FILE, SHARE_DIR };

const sha256 = (s: string) => crypto.createHash("sha256").update(s).digest("hex");

/** Parameters of `home-apply`. The digests make a change of claudeMd or the launcher re-run every home. */
export function homeApplyParams(u: UserPlan, inp: HomeInputs): Params {
  return { NAME: u.name, UID_: u.uid, HOME_: u.home, MIRROR_SHA: sha256(mirrorContent(inp.claudeMd)), LAUNCHER_SHA: sha256(inp.startClaude) };
}

const links = CLAUDE_BASE_LINKS.map((l) => `link ${shq(l)} ${shq(`${CLAUDE_BASE}/${l}`)}`).join("\n");

export const HOME_VERBS: readonly Verb[] = [
  {
    // Root part: checks, then the user part AS THE USER (setpriv, clean environment).
    name: "home-apply",
    root: true,
    record: "always",
    params: ["NAME", "UID_", "HOME_", "MIRROR_SHA", "LAUNCHER_SHA"],
    body: `getent passwd "$NAME" >/dev/null || die "user $NAME does not exist on $(hostname); the account resource must run first"
[ -d "$HOME_" ] || die "home $HOME_ of $NAME is missing on $(hostname)"
as_user /bin/bash "$WS_LIB" home-user "MIRROR_SHA=$MIRROR_SHA" "LAUNCHER_SHA=$LAUNCHER_SHA"
echo "home $NAME converged"`,
  },
  {
    // Runs as the user: converge the managed files of the home.
    name: "home-user",
    root: false,
    params: ["MIRROR_SHA", "LAUNCHER_SHA"],
    body: `PREFIX=${shq(MIRROR_HEADER_PREFIX)}
mirror=${MIRROR_FILE} launcher=${LAUNCHER_FILE}
[ "$(sha256sum <"$mirror" | cut -d' ' -f1)" = "$MIRROR_SHA" ] || die "$mirror on $(hostname) is not the managed mirror this program wants; run pulumi up again (the host component installs it first)"
[ "$(sha256sum <"$launcher" | cut -d' ' -f1)" = "$LAUNCHER_SHA" ] || die "$launcher on $(hostname) is not the launcher this program wants; run pulumi up again"
# Anything that is not what the program writes there (a directory or a file where the other
# belongs, a fifo, a symlink where a file belongs) is the user's: a warning, left alone.
theirs() { echo "warning: $1 is not $2 (the user's); left alone" >&2; }
put() { # put PATH MODE: stdin -> PATH atomically when content or mode differ
  local f=$1 mode=$2 t
  if [ -L "$f" ] || { [ -e "$f" ] && [ ! -f "$f" ]; }; then theirs "$f" "a regular file"; cat >/dev/null; return 0; fi
  t=$(mktemp "$(dirname "$f")/.ws.XXXXXX"); cat >"$t"
  if [ -f "$f" ] && [ ! -L "$f" ] && cmp -s "$t" "$f" && [ "$(stat -c %a "$f")" = "\${mode#0}" ]; then rm -f "$t"; return 0; fi
  chmod "$mode" "$t"; mv -f "$t" "$f"; changed "$f"
}
link() { # link NAME TARGET: ~/.claude/NAME -> TARGET, never replacing user content
  local p="$HOME/.claude/$1"
  if [ -L "$p" ]; then
    [ "$(readlink "$p")" = "$2" ] || { ln -sfn "$2" "$p"; changed "$p -> $2"; }
  elif [ -e "$p" ]; then
    echo "warning: $p is the user's own (not a symlink to $2); left alone" >&2
  else
    ln -s "$2" "$p"; changed "$p -> $2"
  fi
}
dir_ok() { # dir_ok DIR: DIR is a directory (made 0700 when missing), else the user's
  if [ -L "$1" ] || { [ -e "$1" ] && [ ! -d "$1" ]; }; then theirs "$1" "a directory"; return 1; fi
  [ -d "$1" ] || { mkdir -m 0700 "$1"; changed "$1"; }
}
if dir_ok "$HOME/.claude"; then
  [ "$(stat -c %a "$HOME/.claude")" = 700 ] || { chmod 0700 "$HOME/.claude"; changed "$HOME/.claude mode"; }
${links.replace(/^/gm, "  ")}
  s="$HOME/.claude/settings.json"
  if [ ! -e "$s" ] && [ ! -L "$s" ]; then printf '{}\\n' | put "$s" 0600
  elif [ -f "$s" ] && [ ! -L "$s" ] && [ "$(stat -c %a "$s")" != 600 ]; then chmod 0600 "$s"; changed "$s mode 0600"
  fi
fi
# ~/.codex/AGENTS.md: regenerate only while it is still exactly what we wrote last time.
m="$HOME/.codex/AGENTS.md"
if ! dir_ok "$HOME/.codex"; then :
elif [ ! -e "$m" ] && [ ! -L "$m" ]; then
  put "$m" 0644 <"$mirror"
elif [ -f "$m" ] && [ ! -L "$m" ]; then
  first=$(head -n 1 "$m")
  case "$first" in
    "$PREFIX"*)
      want=\${first#"$PREFIX"}; want=\${want%% *}
      have=$(tail -n +2 "$m" | sha256sum | cut -d' ' -f1)
      if [ "$want" = "$have" ]; then put "$m" 0644 <"$mirror"
      else echo "warning: $m was customised by the user; left alone" >&2; fi ;;
    *) echo "warning: $m has no managed header (user's own file); left alone" >&2 ;;
  esac
else
  echo "warning: $m is not a regular file; left alone" >&2
fi
# A launcher the program did not write (the legacy reconcile's, the user's own) is kept once, beside it.
l="$HOME/start-claude.sh"
if [ -f "$l" ] && [ ! -L "$l" ] && ! sed -n 2p "$l" | grep -q 'managed by workstations' && [ ! -e "$l.before-workstations" ] && [ ! -L "$l.before-workstations" ]; then
  cp -p -- "$l" "$l.before-workstations"; changed "$l.before-workstations (the launcher that was there)"
fi
put "$l" 0755 <"$launcher"`,
  },
];
