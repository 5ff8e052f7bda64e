/**
 * The backstop (issue 23 item 3): earlyoom, the Debian package, configured by the program.
 * The per-user caps (components/plan/limits.ts) keep one user inside their slice; earlyoom acts
 * when the host as a whole runs out (the caps of users active at once, the system's own use).
 * systemd-oomd does nothing without swap, and the program sets no swap (team-devvm.md, lesson 9).
 *
 * The team's rules: never prefer `claude` (89 of 100 of their kills were conversations), prefer
 * its tool children (their process name is the version string, like `2.1.332`) and the usual
 * hogs (node, python, chrome, rg, go), avoid what keeps people connected (sshd, the terminal,
 * tmux, systemd). earlyoom matches these against the process name (`/proc/PID/comm`, at most
 * 15 characters). Thresholds are config (`workstations:earlyoom`), the team's `-m 5,3 -s 100,100`
 * by default: SIGTERM below 5% of RAM available, SIGKILL below 3%; swap never counts (100).
 */

/** `workstations:earlyoom`: percentages of RAM and swap left at which earlyoom sends SIGTERM, then SIGKILL. */
export interface EarlyoomSettings {
  memory: { term: number; kill: number };
  swap: { term: number; kill: number };
}

export const DEFAULT_EARLYOOM: EarlyoomSettings = { memory: { term: 5, kill: 3 }, swap: { term: 100, kill: 100 } };

/** Process names earlyoom kills first: Claude's tool children (the version string) and the usual hogs. */
export const EARLYOOM_PREFER = "^(node|nodejs|python[0-9.]*|chrome|chromium|rg|go|cargo|rustc|[0-9]+[.][0-9]+[.][0-9]+)$";
/** Process names earlyoom kills last: Claude itself and what keeps every session up. */
export const EARLYOOM_AVOID = "^(claude|sshd|ttyd|tmux.*|systemd.*|init|dbus-daemon|earlyoom|t3|workstations-.*)$";

/** Where the program puts earlyoom's arguments: a drop-in of the package's unit (its conffile stays as shipped). */
export const EARLYOOM_DROPIN = "/etc/systemd/system/earlyoom.service.d/50-workstations.conf";
export const EARLYOOM_BIN = "/usr/bin/earlyoom";

/** earlyoom's argv after the program's path. */
export function earlyoomArgs(s: EarlyoomSettings): string[] {
  return [
    "-m",
    `${s.memory.term},${s.memory.kill}`,
    "-s",
    `${s.swap.term},${s.swap.kill}`,
    "-r",
    "3600",
    "--prefer",
    EARLYOOM_PREFER,
    "--avoid",
    EARLYOOM_AVOID,
  ];
}

/**
 * The drop-in: ExecStart reset and set (the package's reads $EARLYOOM_ARGS from
 * /etc/default/earlyoom, which stays as shipped and unread). In ExecStart a `$` is written `$$`,
 * and the regular expressions are single-quoted words (they hold no backslash or quote).
 */
export function earlyoomDropIn(s: EarlyoomSettings): string {
  const word = (a: string) => (/^[A-Za-z0-9,._-]+$/.test(a) ? a : `'${a.replace(/\$/g, "$$$$")}'`);
  for (const a of [EARLYOOM_PREFER, EARLYOOM_AVOID]) if (/['"\\%]/.test(a)) throw new Error(`earlyoom: ${a} cannot be written into ExecStart`);
  return [
    "# Written by the workstations program (components/plan/earlyoom.ts); the next `pulumi up` puts it back.",
    "[Service]",
    "ExecStart=",
    `ExecStart=${EARLYOOM_BIN} ${earlyoomArgs(s).map(word).join(" ")}`,
    "",
  ].join("\n");
}

/** Checks `workstations:earlyoom`'s value; returns the problem in words, or the settings. */
export function parseEarlyoom(raw: unknown): EarlyoomSettings | false | string {
  if (raw === undefined) return DEFAULT_EARLYOOM;
  if (raw === false) return false;
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return "must be false or an object {memory: [term, kill], swap: [term, kill]}";
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== "memory" && k !== "swap") return `unknown field ${JSON.stringify(k)} (memory, swap)`;
  const pair = (k: "memory" | "swap"): { term: number; kill: number } | string => {
    const v = o[k];
    if (v === undefined) return DEFAULT_EARLYOOM[k];
    if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === "number" && x >= 0 && x <= 100))
      return `${k} must be [term, kill], two percentages 0-100`;
    const [term, kill] = v as [number, number];
    if (kill > term) return `${k}: the SIGKILL threshold (${kill}) is above the SIGTERM one (${term})`;
    return { term, kill };
  };
  const memory = pair("memory");
  if (typeof memory === "string") return memory;
  const swap = pair("swap");
  if (typeof swap === "string") return swap;
  if (memory.term === 0) return "memory: a SIGTERM threshold of 0 turns earlyoom off; set workstations:earlyoom to false instead";
  return { memory, swap };
}
