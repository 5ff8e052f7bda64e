/**
 * Reads what the host component installs from the repo: bundled scripts, units, the
 * managed Claude settings, the shared Claude base and skel. Pure data out; no Pulumi.
 */
import * as fs from "fs";
import * as path from "path";
import { AGENTS_SOURCE_DIR, BIN_DIR, CLAUDE_BASE, LIB_DIR, MANAGED_SETTINGS, UNIT_DIR, UNITS_SOURCE_DIR } from "./hostContract";
import { LAUNCHER_FILE, MIRROR_FILE, mirrorContent } from "./scripts/home";
import { InstalledFile } from "./scripts/host";

export interface BundledFile extends InstalledFile {
  content: string;
}

export interface HostBundle {
  files: BundledFile[];
  /** Unit files (also part of `files`). */
  units: BundledFile[];
  /** Host-wide units to enable (timers and boot services without `@`). */
  enable: string[];
  managedSettings: string;
  claudeMd: string;
  startClaude: string;
}

function walk(dir: string, root: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const p = path.join(dir, e.name);
      checkBundlePath(path.relative(root, p));
      return e.isDirectory() ? walk(p, root) : [p];
    })
    .sort();
}

export { LIB_DIR };
/** The repo folder shipped to LIB_DIR as it is. */
export const AGENTS_DIR = AGENTS_SOURCE_DIR;

/** A file name the bundle may ship: it becomes part of a host path and a remote script's name. */
export const SAFE_BUNDLE_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;

/** Throws unless every component of `rel` (a path relative to the repo) is a safe name. */
export function checkBundlePath(rel: string): string {
  for (const part of rel.split("/"))
    if (!SAFE_BUNDLE_NAME.test(part))
      throw new Error(
        `bundle: refusing to ship ${JSON.stringify(rel)}: each path component must match ${SAFE_BUNDLE_NAME} (no spaces, quotes, newlines or leading dots); rename it`,
      );
  return rel;
}

export function loadBundle(root: string): HostBundle {
  const read = (p: string) => fs.readFileSync(p, "utf8");
  const managedSettings = read(path.join(root, "config/managed-settings.json"));
  let claudeMd: unknown;
  try {
    claudeMd = JSON.parse(managedSettings).claudeMd;
  } catch (e) {
    throw new Error(`config/managed-settings.json is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof claudeMd !== "string") throw new Error("config/managed-settings.json: expected a string field claudeMd");
  const startClaude = read(path.join(root, "config/start-claude.sh"));

  // scripts/agents mirrors LIB_DIR: its top-level files are the agents' entry points (each
  // also linked from /usr/local/bin), its folders their modules. `lib` is the host library's.
  const agentsDir = path.join(root, AGENTS_DIR);
  const scripts: BundledFile[] = walk(agentsDir, agentsDir).map((p) => {
    const rel = path.relative(agentsDir, p);
    if (rel.split("/")[0] === "lib")
      throw new Error(`bundle: refusing to ship ${AGENTS_DIR}/${rel}: ${LIB_DIR}/lib belongs to the host library; rename the folder`);
    const entry = !rel.includes("/");
    return {
      path: `${LIB_DIR}/${rel}`,
      mode: entry ? "0755" : "0644",
      ...(entry ? { link: `${BIN_DIR}/${rel.replace(/\.mjs$/, "")}` } : {}),
      content: read(p),
    };
  });
  const units: BundledFile[] = walk(path.join(root, UNITS_SOURCE_DIR), path.join(root, UNITS_SOURCE_DIR)).map((p) => ({
    path: `${UNIT_DIR}/${path.basename(p)}`,
    mode: "0644",
    content: read(p),
  }));
  const base: BundledFile[] = walk(path.join(root, "config/claude-base"), path.join(root, "config/claude-base")).map((p) => ({
    path: `${CLAUDE_BASE}/${path.relative(path.join(root, "config/claude-base"), p)}`,
    mode: "0644",
    content: read(p),
  }));
  // The host's copies the home verb installs into every home (checked by digest).
  const share: BundledFile[] = [
    { path: MIRROR_FILE, mode: "0644", content: mirrorContent(claudeMd) },
    { path: LAUNCHER_FILE, mode: "0755", content: startClaude },
  ];
  const skel: BundledFile[] = [
    { path: "/etc/skel/start-claude.sh", mode: "0755", content: startClaude },
    { path: "/etc/skel/.claude/settings.json", mode: "0600", content: "{}\n" },
  ];
  const enable = units
    .map((u) => path.basename(u.path))
    .filter(
      (n) =>
        !n.includes("@") &&
        (n.endsWith(".timer") ||
          n.endsWith(".socket") ||
          (n.endsWith(".service") && !units.some((t) => path.basename(t.path) === n.replace(/\.service$/, ".timer")))),
    );
  return {
    files: [...scripts, ...units, ...base, ...share, ...skel, { path: MANAGED_SETTINGS, mode: "0644", content: managedSettings }],
    units,
    enable,
    managedSettings,
    claudeMd,
    startClaude,
  };
}
