/**
 * The user's side of Forgejo access (SPEC §3.3, README "Forgejo"):
 * - the access token in `~/.git-credentials` (0600, written AS THE USER, the line arrives on
 *   stdin and is never printed), replacing only the line of the Forgejo host;
 * - the locked clone of the infra repo in `~/code` (`~/code/infra` in the workspace layout, its
 *   further repos beside it: plan/code.ts): cloned once, as the user, with that token (remote
 *   `forgejo`, master tracking `forgejo/master`). An existing clone is never re-cloned, reset
 *   or cleaned, whatever state it is in, and one at the other layout's place is adopted where
 *   it is. No git-crypt key is ever involved: encrypted files stay ciphertext.
 * The per-user timer `workstations-refresh-clone@<user>.timer` keeps it fresh afterwards.
 */
import { UserPlan } from "../plan";
import { Params, Verb } from "./shell";

/** Remote name of the infra repo in `~/code`. */
export const CLONE_REMOTE = "forgejo";
export const CLONE_BRANCH = "master";

/** How a `~/.git-credentials` line for `url` starts and which host it is for. */
export function credentialHost(url: string): { scheme: string; host: string } {
  const u = new URL(url);
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`credentialHost: not an http(s) URL: ${url}`);
  return { scheme: `${u.protocol}//`, host: u.host };
}

/** The `~/.git-credentials` line (secret: carries the token). */
export function credentialLine(url: string, user: string, token: string): string {
  const { scheme, host } = credentialHost(url);
  return `${scheme}${encodeURIComponent(user)}:${encodeURIComponent(token)}@${host}\n`;
}

// Runs as the user (setpriv --reset-env: HOME, USER, PATH of the user). Prints the lines of
// file $3 except those for scheme $1 and host $2. git's store helper rewrites the file after
// every successful authentication with the host percent-encoded (\`127.0.0.1%3a3000\`), so
// the comparison decodes it and ignores case.
const FILTER = `filter_host() {
  local scheme=$1 host=$2 f=$3
  [ -f "$f" ] || return 0
  awk -v p="$scheme" -v h="$host" '
    BEGIN { h = tolower(h) }
    index(tolower($0), tolower(p)) == 1 {
      rest = substr($0, length(p) + 1); at = index(rest, "@")
      if (at > 0) {
        hp = tolower(substr(rest, at + 1)); sub(/\\/.*$/, "", hp)
        gsub(/%3a/, ":", hp); gsub(/%5b/, "[", hp); gsub(/%5d/, "]", hp)
        if (hp == h) next
      }
    }
    { print }' "$f"
}`;

/** Parameters of `git-credentials-deliver` and `git-credentials-remove`: the user and the Forgejo host (as the devvm reaches it). */
export function gitCredentialsParams(u: Pick<UserPlan, "name" | "uid">, url: string): Params {
  const { scheme, host } = credentialHost(url);
  return { NAME: u.name, UID_: u.uid, SCHEME: scheme, HOST: host };
}

/**
 * Parameters of `clone`: `dir` is where the clone goes (relative to the home: `code`,
 * `code/infra`, `code/<repo>`), `adoptDir` the other layout's place (a clone there is the
 * user's, left where it is), or "". The clone URL must not carry credentials (they come from
 * ~/.git-credentials).
 */
export function cloneParams(u: Pick<UserPlan, "name" | "uid">, cloneUrl: string, dir = "code", adoptDir = ""): Params {
  if (/@/.test(new URL(cloneUrl).host) || new URL(cloneUrl).username) throw new Error("cloneScript: the clone URL must not carry credentials");
  for (const d of [dir, adoptDir])
    if (d && !/^code(\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,99})?$/.test(d)) throw new Error(`cloneScript: ${d} is not code or code/<name>`);
  return { NAME: u.name, UID_: u.uid, URL: cloneUrl, REMOTE: CLONE_REMOTE, BRANCH: CLONE_BRANCH, DIR: dir, ALT: adoptDir };
}

/**
 * Verbs of the host library. `git-credentials-deliver` writes the credential line (stdin)
 * into ~/.git-credentials as the user, 0600; other hosts' lines stay. `git-credentials-remove`
 * removes the Forgejo host's line (the file goes when nothing else is left). `clone` clones
 * the infra repo into ~/code as the user, once: the credential comes from ~/.git-credentials
 * (the store helper, set in the clone's own config so the refresh timer uses it too), never
 * from argv; the clone goes to a temporary directory first and is renamed into place only
 * when complete, so an interrupted clone never leaves a half ~/code that would then be "left
 * alone" forever.
 */
export const FORGEJO_VERBS: readonly Verb[] = [
  {
    name: "git-credentials-deliver",
    root: true,
    params: ["NAME", "UID_", "SCHEME", "HOST"],
    body: `getent passwd "$NAME" >/dev/null || die "user $NAME does not exist on $(hostname)"
inner=$(cat <<'EOS'
set -euo pipefail
umask 077
${FILTER}
scheme=$1 host=$2 f="$HOME/.git-credentials"
line=$(head -c 4096 | head -n 1)
case "$line" in "$scheme"*"@$host") ;; *) echo "error: the credential on stdin is not one line for $scheme$host" >&2; exit 1 ;; esac
# A symlink or anything but a regular file there is the user's: never written through, left alone.
if [ -L "$f" ] || { [ -e "$f" ] && [ ! -f "$f" ]; }; then echo "warning: $f is not a regular file (the user's); left alone, the Forgejo token not delivered" >&2; exit 0; fi
t=$(mktemp "$HOME/.git-credentials.XXXXXX")
filter_host "$scheme" "$host" "$f" >"$t"
printf '%s\\n' "$line" >>"$t"
if [ -f "$f" ] && cmp -s "$t" "$f" && [ "$(stat -c %a "$f")" = 600 ]; then rm -f "$t"; exit 0; fi
chmod 0600 "$t"; mv -f "$t" "$f"
echo "changed: $f (Forgejo token for $host)"
EOS
)
as_user /bin/bash -c "$inner" git-credentials "$SCHEME" "$HOST"
echo "git credentials of $NAME for $HOST delivered"`,
  },
  {
    name: "git-credentials-remove",
    root: true,
    params: ["NAME", "UID_", "SCHEME", "HOST"],
    body: `getent passwd "$NAME" >/dev/null || { echo "no user $NAME"; exit 0; }
inner=$(cat <<'EOS'
set -euo pipefail
umask 077
${FILTER}
scheme=$1 host=$2 f="$HOME/.git-credentials"
if [ -L "$f" ] || { [ -e "$f" ] && [ ! -f "$f" ]; }; then echo "warning: $f is not a regular file (the user's); left alone" >&2; exit 0; fi
[ -f "$f" ] || exit 0
t=$(mktemp "$HOME/.git-credentials.XXXXXX")
filter_host "$scheme" "$host" "$f" >"$t"
if cmp -s "$t" "$f"; then rm -f "$t"; exit 0; fi
if [ -s "$t" ]; then chmod 0600 "$t"; mv -f "$t" "$f"; else rm -f "$t" "$f"; fi
echo "changed: $f (Forgejo token for $host removed)"
EOS
)
user_step "removing the Forgejo token line" /bin/bash -c "$inner" git-credentials "$SCHEME" "$HOST"
echo "git credentials of $NAME for $HOST removed"`,
  },
  {
    name: "clone",
    root: true,
    params: ["NAME", "UID_", "URL", "REMOTE", "BRANCH", "DIR", "ALT"],
    body: `getent passwd "$NAME" >/dev/null || die "user $NAME does not exist on $(hostname)"
command -v git >/dev/null || die "git is missing on $(hostname); install it (Debian: apt-get install git)"
inner=$(cat <<'EOS'
set -euo pipefail
umask 022
url=$1 remote=$2 branch=$3 d="$HOME/$4" alt=$5
if [ -e "$d" ] || [ -L "$d" ]; then echo "clone: $d exists; left alone (never re-cloned, reset or cleaned)"; exit 0; fi
# The other layout's clone (~/code itself, for the workspace layout) is the user's: adopted where it is.
if [ -n "$alt" ] && [ -d "$HOME/$alt/.git" ]; then echo "clone: $HOME/$alt is a clone already (the other layout); left alone where it is, nothing cloned into $d"; exit 0; fi
parent=$(dirname -- "$d") base=$(basename -- "$d")
if [ "$parent" != "$HOME" ]; then
  # ~/code of the workspace layout: a directory of the user's; never through a symlink, never inside a clone.
  if [ -L "$parent" ] || { [ -e "$parent" ] && [ ! -d "$parent" ]; }; then echo "warning: $parent is not a directory (the user's); left alone, nothing cloned into $d" >&2; exit 0; fi
  if [ -e "$parent/.git" ]; then echo "clone: $parent is a git clone; nothing cloned inside it ($d); left alone" >&2; exit 0; fi
  mkdir -p -- "$parent"
fi
shopt -s nullglob
for old in "$parent/.$base.clone."*; do [ -L "$old" ] || rm -rf -- "$old"; done
tmp=$(mktemp -d "$parent/.$base.clone.XXXXXX")
if ! GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=/bin/false git -c credential.helper=store clone --quiet --origin "$remote" --branch "$branch" -- "$url" "$tmp/code" 2>"$tmp/err"; then
  echo "error: cloning $url into $d failed: $(tail -n 3 "$tmp/err" | tr '\\n' ' ')" >&2
  rm -rf -- "$tmp"; exit 1
fi
git -C "$tmp/code" config credential.helper store
[ "$(git -C "$tmp/code" rev-parse --abbrev-ref --symbolic-full-name '@{u}')" = "$remote/$branch" ] || { echo "error: $branch does not track $remote/$branch" >&2; rm -rf -- "$tmp"; exit 1; }
mv -T -- "$tmp/code" "$d"
rm -rf -- "$tmp"
echo "changed: cloned $url into $d (remote $remote, $branch tracks $remote/$branch; git-crypt files stay locked)"
EOS
)
as_user /bin/bash -c "$inner" clone "$URL" "$REMOTE" "$BRANCH" "$DIR" "$ALT"`,
  },
];
