/**
 * The user's limits on the host (issue 23): verbs of the host library, run by the user's
 * `limits` resource (created with the account, kept while suspended, removed on offboarding).
 *
 * - `user-<uid>.slice` gets a drop-in with the slice caps (MemoryMax, MemorySwapMax,
 *   CPUWeight, CPUQuota, TasksMax): every process of the user that systemd places in their
 *   slice (logins, `user@<uid>.service` and everything in it, the scopes tmux-persist starts)
 *   is under them together. A change applies at once: systemd (257 measured) loads a changed
 *   drop-in on daemon-reload but leaves a running slice's cgroup as it was, so the verb also
 *   sets the values at runtime (`systemctl set-property --runtime`).
 * - The per-user units root starts as the user (T3's server, the token renewal, the clone
 *   refresh: `<unit>@<name>.service`) get `Slice=user-<uid>.slice` in an instance drop-in, so
 *   they run under the same caps (from their next start).
 * - Every scope the user's manager creates (tmux's `tmux-spawn-*.scope` per pane, the scopes
 *   of `systemd-run --user --scope`) gets the pane cap with `OOMPolicy=continue`, so an OOM
 *   kill takes one process, not the pane or the server. The user's manager reads it from a
 *   root-owned directory of its own: `user@<uid>.service` runs with
 *   `XDG_CONFIG_DIRS=/etc/workstations/limits/<uid>/xdg:/etc/xdg`, and its unit search path
 *   includes `$XDG_CONFIG_DIRS/systemd/user` (systemd.unit(5)). It takes effect at the
 *   manager's next start (never restarted here: that would end the user's sessions).
 */
import type { UserPlan } from "../plan";
import { ETC_DIR } from "../hostContract";

/** The per-user system units (templates, instance = the user name) placed in the user's slice. */
export const USER_SLICE_UNITS = ["t3-serve", "claude-token-renew", "workstations-refresh-clone"] as const;
export const UNIT_SLICE_DROPIN = (unit: string, name: string) => `/etc/systemd/system/${unit}@${name}.service.d/50-workstations-slice.conf`;
import { Params, Verb } from "./shell";

/** Where the user manager of `uid` reads its root-owned defaults. */
export const limitsXdgDir = (uid: number | string) => `${ETC_DIR}/limits/${uid}/xdg`;
export const SLICE_DROPIN = (uid: number | string) => `/etc/systemd/system/user-${uid}.slice.d/50-workstations.conf`;
export const MANAGER_DROPIN = (uid: number | string) => `/etc/systemd/system/user@${uid}.service.d/50-workstations.conf`;
export const SCOPE_DROPIN = (uid: number | string) => `${limitsXdgDir(uid)}/systemd/user/scope.d/50-workstations.conf`;

/** Parameters of `limits-apply`. */
export function limitsParams(u: Pick<UserPlan, "name" | "uid" | "limits">): Params {
  const l = u.limits;
  return {
    NAME: u.name,
    UID_: u.uid,
    MEMORY_MAX: l.memoryMax,
    SWAP_MAX: l.swapMax,
    CPU_WEIGHT: l.cpuWeight,
    CPU_QUOTA: l.cpuQuota ?? "",
    TASKS_MAX: l.tasksMax,
    PANE_MEMORY_MAX: l.paneMemoryMax,
  };
}

const SIZE = "^([1-9][0-9]{0,5}[KMGT]|0|([1-9][0-9]?|100)%)$";

export const LIMITS_VERBS: readonly Verb[] = [
  {
    name: "limits-apply",
    record: "always",
    root: true,
    params: ["NAME", "UID_", "MEMORY_MAX", "SWAP_MAX", "CPU_WEIGHT", "CPU_QUOTA", "TASKS_MAX", "PANE_MEMORY_MAX"],
    body: `for v in "$MEMORY_MAX" "$SWAP_MAX" "$PANE_MEMORY_MAX"; do [[ "$v" =~ ${SIZE} ]] || die "limits of $NAME: '$v' is not a size"; done
[[ "$CPU_WEIGHT" =~ ^[0-9]+$ && "$TASKS_MAX" =~ ^[0-9]+$ ]] || die "limits of $NAME: CPU weight and tasks max must be numbers"
[ -z "$CPU_QUOTA" ] || [[ "$CPU_QUOTA" =~ ^[0-9]+%$ ]] || die "limits of $NAME: '$CPU_QUOTA' is not a CPU quota"
[[ "$UID_" =~ ^[0-9]+$ ]] || die "limits: bad uid"
[[ "$NAME" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "limits: bad user name"
slice=/etc/systemd/system/user-$UID_.slice.d manager=/etc/systemd/system/user@$UID_.service.d
xdg=${ETC_DIR}/limits/$UID_/xdg scope=${ETC_DIR}/limits/$UID_/xdg/systemd/user/scope.d
install -d -m 0755 "$slice" "$manager" "$scope"
{
  printf '# managed by workstations: limits of %s (roster limits, role defaults)\\n[Slice]\\n' "$NAME"
  printf 'MemoryAccounting=yes\\nMemoryMax=%s\\nMemorySwapMax=%s\\nCPUWeight=%s\\nTasksMax=%s\\n' "$MEMORY_MAX" "$SWAP_MAX" "$CPU_WEIGHT" "$TASKS_MAX"
  [ -z "$CPU_QUOTA" ] || printf 'CPUQuota=%s\\n' "$CPU_QUOTA"
} | write_file "$slice/50-workstations.conf" 0644 root:root
printf '# managed by workstations: %s'"'"'s manager reads its pane caps from %s\\n[Service]\\nEnvironment=XDG_CONFIG_DIRS=%s:/etc/xdg\\n' "$NAME" "$xdg" "$xdg" \\
  | write_file "$manager/50-workstations.conf" 0644 root:root
printf '# managed by workstations: each scope of %s (a pane) is capped; an OOM kill takes one process\\n[Scope]\\nMemoryMax=%s\\nMemorySwapMax=0\\nOOMPolicy=continue\\n' "$NAME" "$PANE_MEMORY_MAX" \\
  | write_file "$scope/50-workstations.conf" 0644 root:root
for unit in ${USER_SLICE_UNITS.join(" ")}; do
  install -d -m 0755 "/etc/systemd/system/$unit@$NAME.service.d"
  printf '# managed by workstations: %s of %s runs in their slice, under their limits\\n[Service]\\nSlice=user-%s.slice\\n' "$unit" "$NAME" "$UID_" \\
    | write_file "/etc/systemd/system/$unit@$NAME.service.d/50-workstations-slice.conf" 0644 root:root
done
if [ "$changes" -gt 0 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  # systemd (257 measured) loads a changed drop-in on daemon-reload but does not apply it to a
  # running slice: set the same values at runtime too (/run/systemd/system.control, gone at
  # reboot, when the drop-in above takes over; every change sets both, so they never differ).
  if systemctl -q is-active "user-$UID_.slice"; then
    systemctl set-property --runtime "user-$UID_.slice" "MemoryMax=$MEMORY_MAX" "MemorySwapMax=$SWAP_MAX" "CPUWeight=$CPU_WEIGHT" "TasksMax=$TASKS_MAX" "CPUQuota=$CPU_QUOTA"
    changed "applied to the running user-$UID_.slice"
  fi
fi
echo "limits of $NAME: MemoryMax=$MEMORY_MAX MemorySwapMax=$SWAP_MAX CPUWeight=$CPU_WEIGHT CPUQuota=\${CPU_QUOTA:-none} TasksMax=$TASKS_MAX pane MemoryMax=$PANE_MEMORY_MAX changes=$changes"`,
  },
  {
    name: "limits-remove",
    forgets: ["limits-apply"],
    root: true,
    params: ["NAME", "UID_"],
    body: `[[ "$UID_" =~ ^[0-9]+$ ]] || die "limits: bad uid"
[[ "$NAME" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "limits: bad user name"
remove_file "/etc/systemd/system/user-$UID_.slice.d/50-workstations.conf"
remove_file "/etc/systemd/system/user@$UID_.service.d/50-workstations.conf"
for unit in ${USER_SLICE_UNITS.join(" ")}; do
  remove_file "/etc/systemd/system/$unit@$NAME.service.d/50-workstations-slice.conf"
  rmdir "/etc/systemd/system/$unit@$NAME.service.d" 2>/dev/null || true
done
for p in MemoryMax MemorySwapMax CPUWeight TasksMax CPUQuota; do remove_file "/run/systemd/system.control/user-$UID_.slice.d/50-$p.conf"; done
rmdir "/etc/systemd/system/user-$UID_.slice.d" "/etc/systemd/system/user@$UID_.service.d" "/run/systemd/system.control/user-$UID_.slice.d" 2>/dev/null || true
if [ -d ${ETC_DIR}/limits/$UID_ ]; then rm -rf --one-file-system "${ETC_DIR}/limits/$UID_"; changed "removed ${ETC_DIR}/limits/$UID_"; fi
if [ "$changes" -gt 0 ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
echo "limits of $NAME removed changes=$changes"`,
  },
];
