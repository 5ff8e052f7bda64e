/**
 * Delivery of the renewal agent's Vault AppRole credential (SPEC §3.6): verbs of the host
 * library. The credential arrives on stdin (never in argv) and is written AS THE USER to
 * ~/.config/claude-token-renew/vault.json, mode 0600.
 */
import { UserPlan } from "../plan";
import { Params, shq, userParams, userVerb, Verb } from "./shell";

export const vaultCredParams = (u: Pick<UserPlan, "name" | "uid">): Params => userParams(u);

// Runs as the user. Anything at these paths that is not what the program writes (a
// directory, a symlink, a fifo where a file belongs; a file where a directory belongs) is
// the user's: a warning, left as it is, exit 0.
const VAULT_DELIVER_USER = `set -euo pipefail
umask 077
c="$HOME/.config" d="$HOME/.config/claude-token-renew" f="$HOME/.config/claude-token-renew/vault.json"
for p in "$c" "$d"; do
  if [ -e "$p" ] && [ ! -d "$p" ]; then echo "warning: $p is not a directory (the user's); vault credential not delivered" >&2; exit 0; fi
done
if [ -L "$f" ] || { [ -e "$f" ] && [ ! -f "$f" ]; }; then echo "warning: $f is not a regular file (the user's); left alone, vault credential not delivered" >&2; exit 0; fi
mkdir -p "$d"; chmod 0700 "$c" "$d"
t=$(mktemp "$d/.vault.XXXXXX"); cat >"$t"
if [ -f "$f" ] && cmp -s "$t" "$f" && [ "$(stat -c %a "$f")" = 600 ]; then rm -f "$t"; exit 0; fi
chmod 0600 "$t"; mv -fT "$t" "$f"; echo "changed: $f (credential rotated)"`;

const VAULT_REMOVE_USER = `set -euo pipefail
f="$HOME/.config/claude-token-renew/vault.json"
if [ -f "$f" ] && [ ! -L "$f" ]; then rm -f "$f"; echo "changed: removed $f"
elif [ -e "$f" ] || [ -L "$f" ]; then echo "warning: $f is not a regular file (the user's); left alone" >&2
fi`;

export const VAULT_CRED_VERBS: readonly Verb[] = [
  userVerb(
    "vault-deliver",
    `getent passwd "$NAME" >/dev/null || die "user $NAME does not exist on $(hostname)"
as_user /bin/bash -c ${shq(VAULT_DELIVER_USER)}
echo "vault credential of $NAME delivered"`,
  ),
  userVerb(
    "vault-remove",
    `getent passwd "$NAME" >/dev/null || { echo "no user $NAME"; exit 0; }
user_step "removing the vault credential" /bin/bash -c ${shq(VAULT_REMOVE_USER)}
echo "vault credential of $NAME removed"`,
  ),
];
