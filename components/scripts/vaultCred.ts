/**
 * Delivery of the renewal agent's Vault AppRole credential (SPEC §3.6): verbs of the host
 * library. The credential arrives on stdin (never in argv) and is written AS THE USER to
 * ~/.config/claude-token-renew/vault.json, mode 0600.
 */
import { UserPlan } from "../plan";
import { Params, userParams, userVerb, Verb } from "./shell";

export const vaultCredParams = (u: Pick<UserPlan, "name" | "uid">): Params => userParams(u);

export const VAULT_CRED_VERBS: readonly Verb[] = [
  userVerb(
    "vault-deliver",
    `getent passwd "$NAME" >/dev/null || die "user $NAME does not exist on $(hostname)"
setpriv --reuid="$UID_" --regid="$UID_" --init-groups --reset-env -- /bin/bash -c '
set -euo pipefail
umask 077
d="$HOME/.config/claude-token-renew"; f="$d/vault.json"
mkdir -p "$d"; chmod 0700 "$HOME/.config" "$d"
t=$(mktemp "$d/.vault.XXXXXX"); cat >"$t"
if [ -f "$f" ] && [ ! -L "$f" ] && cmp -s "$t" "$f" && [ "$(stat -c %a "$f")" = 600 ]; then rm -f "$t"; exit 0; fi
chmod 0600 "$t"; mv -f "$t" "$f"; echo "changed: $f (credential rotated)"'
echo "vault credential of $NAME delivered"`,
  ),
  userVerb(
    "vault-remove",
    `getent passwd "$NAME" >/dev/null || { echo "no user $NAME"; exit 0; }
h=$(getent passwd "$NAME" | cut -d: -f6)
setpriv --reuid="$UID_" --regid="$UID_" --init-groups --reset-env -- rm -f "$h/.config/claude-token-renew/vault.json"
echo "vault credential of $NAME removed"`,
  ),
];
