/**
 * The earlyoom drop-in on the host (components/plan/earlyoom.ts decides its text), as host
 * library verbs. The package is the host's: where it is not installed the drop-in still goes in
 * (it takes effect when it is) and the run says so in one warning line, naming the package.
 */
import { EARLYOOM_BIN, EARLYOOM_DROPIN } from "../plan/earlyoom";
import { b64, Params, Verb } from "./shell";

const RESTART = `restart_earlyoom() {
  systemctl daemon-reload
  if [ -x ${EARLYOOM_BIN} ] && systemctl cat earlyoom.service >/dev/null 2>&1; then
    systemctl -q is-enabled earlyoom.service 2>/dev/null || { systemctl enable earlyoom.service >/dev/null 2>&1; changed "enabled earlyoom.service"; }
    systemctl restart earlyoom.service; changed "restarted earlyoom.service"
  fi
}`;

/** The parameters of `earlyoom-apply`: the drop-in's text. */
export function earlyoomParams(dropIn: string): Params {
  return { DROPIN_B64: b64(dropIn) };
}

export const EARLYOOM_VERBS: readonly Verb[] = [
  {
    // Writes the drop-in when it differs and restarts earlyoom on a change (or starts it when stopped).
    name: "earlyoom-apply",
    record: "always",
    root: true,
    params: ["DROPIN_B64"],
    body: `${RESTART}
local f=${EARLYOOM_DROPIN} before=$changes
install -d -m 0755 "$(dirname "$f")"
printf '%s' "$DROPIN_B64" | base64 -d | write_file "$f" 0644 root:root
if [ "$changes" != "$before" ]; then restart_earlyoom
elif [ -x ${EARLYOOM_BIN} ] && ! systemctl -q is-active earlyoom.service; then restart_earlyoom
fi
[ -x ${EARLYOOM_BIN} ] || echo "warning: earlyoom is not installed on $(hostname): the memory backstop is off until it is (apt-get install earlyoom; the next up starts it)"
echo "earlyoom changes=$changes"`,
  },
  {
    // Removes the drop-in: earlyoom goes back to the package's own arguments.
    name: "earlyoom-remove",
    forgets: ["earlyoom-apply"],
    root: true,
    params: [],
    body: `${RESTART}
local f=${EARLYOOM_DROPIN} before=$changes
remove_file "$f"
rmdir "$(dirname "$f")" 2>/dev/null || true
if [ "$changes" != "$before" ]; then restart_earlyoom; fi
echo "earlyoom removed changes=$changes"`,
  },
];
