/**
 * Retiring the team's hand-run pieces on a host the program takes over (issue 21 item 3;
 * ../shared/notes/team-devvm.md "Legacy pieces a takeover meets"): the hourly reconcile
 * (`t3-provision-users.timer`/`.service`), which re-installs its own files over the
 * program's every hour (and its managed Claude settings, moved aside as well), and the legacy tmux-persist (`/usr/local/bin/tmux-persist` and its units
 * under the names ours use). Runs before the host files are installed, so nothing of the
 * program's overwrites a legacy file: each is moved, never deleted, into
 * LEGACY_DIR/<UTC time>/ (its path kept below that folder), with a MANIFEST saying what was
 * enabled and active; the reconcile's units are then masked, so nothing brings them back.
 * `workstations-legacy-rollback` (scripts/agents) puts everything of the newest folder back.
 * A file is the program's (and left alone) when the last host-files manifest lists it or it is
 * the program's own link; a host without legacy pieces is not touched (changes=0).
 */
import { LEGACY_DIR, MANAGED_SETTINGS, TMUX_PERSIST_PROGRAM } from "../hostContract";
import { HOST_FILES_MANIFEST } from "./hostFiles";
import { remoteScript, vars } from "./shell";

/** The reconcile's units: stopped, moved aside and masked. */
export const LEGACY_RECONCILE_UNITS = ["t3-provision-users.timer", "t3-provision-users.service"] as const;
/**
 * Files the reconcile installs at paths the program installs its own (the managed Claude
 * settings): moved aside when they are not the program's, so the program's install replaces
 * nothing of theirs.
 */
export const LEGACY_RECONCILE_FILES = [MANAGED_SETTINGS] as const;
/** The legacy tmux-persist's units: the names ours have. */
export const LEGACY_TMUX_UNITS = ["tmux-persist-save.timer", "tmux-persist-save.service", "tmux-persist-restore.service"] as const;
/** Files the legacy tmux-persist has at the paths the program installs its own. */
export const LEGACY_TMUX_FILES = [
  "/usr/local/bin/tmux-persist",
  "/etc/systemd/system/tmux-persist-save.timer",
  "/etc/systemd/system/tmux-persist-save.service",
  "/etc/systemd/system/tmux-persist-restore.service",
] as const;

/** Create of the host's legacy step (before the host files). */
export function legacyRetireScript(): string {
  const body = `${vars({
    M: HOST_FILES_MANIFEST,
    LEGACY: LEGACY_DIR,
    OURS: TMUX_PERSIST_PROGRAM,
    RECONCILE: LEGACY_RECONCILE_UNITS.join(" "),
    RFILES: LEGACY_RECONCILE_FILES.join(" "),
    TMUX_UNITS: LEGACY_TMUX_UNITS.join(" "),
    TMUX_FILES: LEGACY_TMUX_FILES.join(" "),
  })}
dir=""
run_dir() { [ -n "$dir" ] || { dir="$LEGACY/$(date -u +%Y%m%dT%H%M%SZ)"; install -d -m 0700 "$LEGACY" "$dir"; }; }
ours() { [ -f "$M" ] && awk -v f="$1" '$3 == f || $4 == f { found = 1 } END { exit !found }' "$M"; }
aside() {
  local f=$1
  run_dir
  install -d -m 0700 "$dir$(dirname "$f")"
  mv -f -- "$f" "$dir$f"
  printf 'file %s\\n' "$f" >>"$dir/MANIFEST"
  changed "moved $f to $dir$f"
}
stop_unit() {
  local u=$1 en act
  en=$(systemctl is-enabled "$u" 2>/dev/null || true)
  act=$(systemctl is-active "$u" 2>/dev/null || true)
  run_dir
  printf 'unit %s %s %s\\n' "$u" "\${en:-unknown}" "\${act:-unknown}" >>"$dir/MANIFEST"
  systemctl disable --now "$u" >/dev/null 2>&1 || true
  changed "stopped $u (was $en/$act)"
}
for u in $RECONCILE; do
  [ "$(systemctl is-enabled "$u" 2>/dev/null || true)" = masked ] && continue
  src=$(systemctl show -P FragmentPath "$u" 2>/dev/null || true)
  [ -n "$src" ] && [ -f "$src" ] || continue
  stop_unit "$u"
  case "$src" in /etc/systemd/system/*) aside "$src" ;; esac
  systemctl mask "$u" >/dev/null
  printf 'masked %s\\n' "$u" >>"$dir/MANIFEST"
  changed "masked $u"
done
for f in $RFILES; do
  [ -f "$f" ] && [ ! -L "$f" ] && ! ours "$f" && aside "$f"
done
legacy_tp=0
for f in $TMUX_FILES; do
  { [ -e "$f" ] || [ -L "$f" ]; } || continue
  ours "$f" && continue
  [ "$(readlink "$f" || true)" = "$OURS" ] && continue
  legacy_tp=1
done
if [ "$legacy_tp" = 1 ]; then
  for u in $TMUX_UNITS; do
    f=/etc/systemd/system/$u
    if { [ -e "$f" ] && ! ours "$f"; }; then stop_unit "$u"; fi
  done
  for f in $TMUX_FILES; do
    { [ -e "$f" ] || [ -L "$f" ]; } || continue
    ours "$f" && continue
    [ "$(readlink "$f" || true)" = "$OURS" ] && continue
    aside "$f"
  done
fi
if [ "$changes" != 0 ]; then systemctl daemon-reload; echo "legacy pieces moved to $dir; put back with: workstations-legacy-rollback"; fi
echo "legacy changes=$changes"`;
  return remoteScript("legacy pieces", body);
}
