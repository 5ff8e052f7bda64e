/**
 * The user's `~/.kube/config` (SPEC §3.8): written AS THE USER (setpriv, clean environment),
 * 0600, the content arriving on stdin. Header-guarded like the `~/.codex/AGENTS.md` mirror
 * (scripts/home.ts): the first line carries the sha256 of the rest, and a file whose first
 * line is not that header, or whose body no longer matches it (the user, or `kubectl config
 * ...`, changed it), is left alone with a warning. The kubeconfig carries no credential: the
 * `exec` plugin (`kubectl oidc-login`) fetches the user's OIDC token at use.
 */
import * as crypto from "crypto";
import { UserPlan } from "../plan";
import { Params, shq, userParams, userVerb, Verb } from "./shell";

/** First line of a managed kubeconfig; the hash is of everything after that line. */
export const KUBECONFIG_HEADER_PREFIX = "# managed-by: workstations (kubeconfig; edit it and this file is left alone) sha256:";

/** Header + body: the exact bytes the delivery script writes. */
export function guardedKubeconfig(body: string): string {
  const b = body.endsWith("\n") ? body : body + "\n";
  return `${KUBECONFIG_HEADER_PREFIX}${crypto.createHash("sha256").update(b).digest("hex")}\n${b}`;
}

// Runs as the user. Sets `state` to absent|managed|user for "$f".
const CLASSIFY = `classify() {
  if [ -L "$f" ] || { [ -e "$f" ] && [ ! -f "$f" ]; }; then state=user; return; fi
  [ -e "$f" ] || { state=absent; return; }
  first=$(head -n 1 "$f")
  case "$first" in
    "$PREFIX"*)
      want=\${first#"$PREFIX"}; want=\${want%% *}
      have=$(tail -n +2 "$f" | sha256sum | cut -d' ' -f1)
      if [ "$want" = "$have" ]; then state=managed; else state=user; fi ;;
    *) state=user ;;
  esac
}`;

export const kubeconfigParams = (u: Pick<UserPlan, "name" | "uid">): Params => userParams(u);

/**
 * Verbs of the host library. `kubeconfig-deliver` writes stdin (a `guardedKubeconfig`) to
 * ~/.kube/config as the user, unless the user's own file is there; `kubeconfig-remove`
 * removes it only while it is still exactly the managed one.
 */
export const KUBECONFIG_VERBS: readonly Verb[] = [
  userVerb(
    "kubeconfig-deliver",
    `getent passwd "$NAME" >/dev/null || die "user $NAME does not exist on $(hostname); the account resource must run first"
inner=$(cat <<'EOS'
set -euo pipefail
umask 077
PREFIX=$1
${CLASSIFY}
d="$HOME/.kube" f="$HOME/.kube/config"
[ ! -L "$d" ] || { echo "warning: $d is a symlink; kubeconfig not written" >&2; exit 0; }
if [ -e "$d" ] && [ ! -d "$d" ]; then echo "warning: $d is not a directory (the user's); kubeconfig not written" >&2; exit 0; fi
[ -d "$d" ] || { mkdir -p "$d"; echo "changed: $d"; }
[ "$(stat -c %a "$d")" = 700 ] || { chmod 0700 "$d"; echo "changed: $d mode 0700"; }
t=$(mktemp "$d/.config.XXXXXX")
head -c 262144 >"$t"
case "$(head -n 1 "$t")" in "$PREFIX"*) ;; *) rm -f "$t"; echo "error: stdin is not a managed kubeconfig" >&2; exit 1 ;; esac
classify
if [ "$state" = user ]; then rm -f "$t"; echo "warning: $f is the user's own (changed, or not written by workstations); left alone" >&2; exit 0; fi
if [ "$state" = managed ] && cmp -s "$t" "$f" && [ "$(stat -c %a "$f")" = 600 ]; then rm -f "$t"; exit 0; fi
chmod 0600 "$t"; mv -f "$t" "$f"
echo "changed: $f"
EOS
)
as_user /bin/bash -c "$inner" kubeconfig ${shq(KUBECONFIG_HEADER_PREFIX)}
echo "kubeconfig of $NAME converged"`,
  ),
  userVerb(
    "kubeconfig-remove",
    `getent passwd "$NAME" >/dev/null || { echo "no user $NAME"; exit 0; }
inner=$(cat <<'EOS'
set -euo pipefail
PREFIX=$1
${CLASSIFY}
f="$HOME/.kube/config"
classify
case "$state" in
  managed) rm -f "$f"; echo "changed: removed $f" ;;
  user) echo "warning: $f is the user's own; left alone" >&2 ;;
esac
EOS
)
user_step "removing the kubeconfig" /bin/bash -c "$inner" kubeconfig-remove ${shq(KUBECONFIG_HEADER_PREFIX)}
echo "kubeconfig of $NAME removed"`,
  ),
];
