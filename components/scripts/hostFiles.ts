/**
 * The host files as one archive (components/bundle.ts `hostArchive`): the command provider
 * copies it to HOST_FILES_ARCHIVE (a CopyToRemote whose state keeps the asset's hash, not the
 * text), then one command installs it. Its inputs are the archive's digest, so the state holds
 * a hash however large the shipped files are, and a changed file still re-runs the install.
 *
 * The install checks the staged archive against the digest, writes every file of the manifest
 * that differs (atomically, root:root, the manifest's mode) and its link, removes what the
 * previous manifest had and this one has not (unless kept: host library versions, which the
 * deletes stored in state still call), and records the manifest. The delete removes every file
 * of the recorded manifest and every host library version.
 */
import { CLAUDE_TOKEN_ENV, DEPLOYED_DIR, HOST_LIB_DIR, STATE_DIR, ZSH_PROFILE } from "../hostContract";
import { remoteScript, shq, vars, Verb } from "./shell";

/** The line the install keeps in ZSH_PROFILE (zsh login shells read the setup-token snippet too), as the install's shell writes it ($E is CLAUDE_TOKEN_ENV there). */
const ZSH_LINE_SH = `[ -r $E ] && emulate sh -c '. $E' # workstations`;
export const ZSH_PROFILE_LINE = ZSH_LINE_SH.replaceAll("$E", CLAUDE_TOKEN_ENV);

/** Where the archive is staged on the host (root-only: STATE_DIR is 0700). */
export const HOST_FILES_ARCHIVE = `${STATE_DIR}/host-files.tar`;
/** The manifest of the last install (what the next install and the delete remove). */
export const HOST_FILES_MANIFEST = `${STATE_DIR}/host-files.manifest`;

const REMOVE_FUNC = `# remove_entry PATH LINK: the file, its link if it still points at it, and empty parents.
remove_entry() {
  local f=$1 link=$2 d
  [ "$link" = - ] || [ "$(readlink "$link" 2>/dev/null || true)" != "$f" ] || remove_file "$link"
  remove_file "$f"
  d=$(dirname "$f")
  while [ "$d" != / ] && rmdir "$d" 2>/dev/null; do d=$(dirname "$d"); done
}`;

/** The install, as the host library's `host-files-apply` (DIGEST) and as the first install's own script. */
const INSTALL_BODY = `${vars({ A: HOST_FILES_ARCHIVE, M: HOST_FILES_MANIFEST, E: CLAUDE_TOKEN_ENV, Z: ZSH_PROFILE })}
${REMOVE_FUNC}
host=$(hostname)
[ -f "$A" ] || die "the staged host files $A are missing on $host; run pulumi up again (the copy runs first)"
got=$(sha256sum <"$A" | cut -c1-64)
[ "$got" = "$DIGEST" ] || die "the staged host files $A on $host are $got, expected $DIGEST; run pulumi up again"
t=$(mktemp -d ${STATE_DIR}/.host-files.XXXXXX)
trap 'rm -rf "$t"' EXIT
tar -xf "$A" -C "$t" --no-same-owner --no-same-permissions
[ -f "$t/MANIFEST" ] || die "$A has no MANIFEST"
while read -r idx mode f link _; do
  install -d -m 0755 "$(dirname "$f")"
  write_file "$f" "$mode" root:root <"$t/files/$idx"
  if [ "$link" != - ] && [ "$(readlink "$link" 2>/dev/null || true)" != "$f" ]; then ln -sfn "$f" "$link"; changed "$link"; fi
done <"$t/MANIFEST"
if [ -f "$M" ]; then
  while read -r _ _ f link keep; do
    [ "$keep" = 1 ] && continue
    awk -v f="$f" '$3 == f { found = 1 } END { exit !found }' "$t/MANIFEST" || remove_entry "$f" "$link"
  done <"$M"
fi
write_file "$M" 0600 root:root <"$t/MANIFEST"
# zsh login shells: one line in $Z (the rest kept)
zl="${ZSH_LINE_SH}"
if [ -d "\${Z%/*}" ] && ! grep -qxF "$zl" "$Z" 2>/dev/null; then { cat "$Z" 2>/dev/null || true; printf '%s\\n' "$zl"; } | write_file "$Z" 0644 root:root; fi
echo "host files $DIGEST changes=$changes"`;

/** `host-files-apply`: the install again from the staged archive (what workstations-heal replays). */
export const HOST_FILES_VERBS: readonly Verb[] = [{ name: "host-files-apply", root: true, record: "always", params: ["DIGEST"], body: INSTALL_BODY }];

/**
 * Create (and, with a new digest, update) of the install resource: the install (the host
 * library is one of the files, so it cannot do the first one), then, the host lock released,
 * the library's `host-files-apply`, which finds nothing to change and keeps the record
 * workstations-heal puts drifted files back from.
 */
export function hostFilesInstallScript(digest: string, lib: string): string {
  return remoteScript(
    "host files",
    `${vars({ DIGEST: digest })}
${INSTALL_BODY}
exec 9>&-
${shq(lib)} host-files-apply "DIGEST=$DIGEST" | tail -n 1`,
  );
}

/** Delete of the install resource (the host component is going away): every installed file. */
export function hostFilesRemoveScript(): string {
  const body = `${vars({ A: HOST_FILES_ARCHIVE, M: HOST_FILES_MANIFEST })}
${REMOVE_FUNC}
if [ -f "$M" ]; then
  while read -r _ _ f link _; do remove_entry "$f" "$link"; done <"$M"
  remove_file "$M"
fi
remove_file "$A"
if [ -d ${HOST_LIB_DIR} ]; then rm -rf ${HOST_LIB_DIR}; changed "removed ${HOST_LIB_DIR}"; fi
# nothing of the program is left to heal
if [ -d ${DEPLOYED_DIR} ]; then rm -rf ${DEPLOYED_DIR}; changed "removed ${DEPLOYED_DIR}"; fi
echo "host files removed changes=$changes"`;
  return remoteScript("host files removal", body);
}
