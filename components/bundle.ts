/**
 * Reads what the host component installs from the repo: bundled scripts, units, the
 * managed Claude settings, the shared Claude base and skel. Pure data out; no Pulumi.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { AGENTS_SOURCE_DIR, BIN_DIR, CLAUDE_BASE, CLAUDE_TOKEN_ENV, LIB_DIR, MANAGED_SETTINGS, UNIT_DIR, UNITS, UNITS_SOURCE_DIR } from "./hostContract";
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
  const claudeToken = read(path.join(root, "config/claude-token.sh"));

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
  // The web terminal's unit is the web step's to enable and disable (web-apply with
  // workstations:webTerminal on, web-remove): enabled here too, the two disagreed, and the
  // drift heal re-enabled what the web step had turned off.
  const enable = units
    .map((u) => path.basename(u.path))
    .filter(
      (n) =>
        !n.includes("@") &&
        n !== UNITS.webTerminal &&
        (n.endsWith(".timer") ||
          n.endsWith(".socket") ||
          (n.endsWith(".service") && !units.some((t) => path.basename(t.path) === n.replace(/\.service$/, ".timer")))),
    );
  return {
    files: [
      ...scripts,
      ...units,
      ...base,
      ...share,
      ...skel,
      { path: MANAGED_SETTINGS, mode: "0644", content: managedSettings },
      { path: CLAUDE_TOKEN_ENV, mode: "0644", content: claudeToken },
    ],
    units,
    enable,
    managedSettings,
    claudeMd,
    startClaude,
  };
}

/**
 * Everything the host component installs, as one tar archive (the host files' state is then
 * one digest, not every file's text twice: issue 25). Entries: `MANIFEST` (one line per file:
 * `<index> <mode> <path> <link or -> <keep 0|1>`) and `files/<index>` with the bytes. Paths
 * are checked safe names (no whitespace), so the lines split on spaces. Deterministic: the
 * same files give the same bytes (mtime 0, root:root, 0644 in the archive; the manifest
 * carries the real mode), so the digest only changes with the content.
 */
export interface HostArchive {
  /** sha256 of the archive bytes (hex). */
  digest: string;
  bytes: Buffer;
  manifest: string;
}

export interface ArchiveFile extends BundledFile {
  /** Never removed when a later archive leaves it out (host library versions: old deletes call them). */
  keep?: boolean;
}

/** An absolute host path the manifest can carry: safe names, no whitespace. */
const HOST_PATH = /^(\/[A-Za-z0-9._@+-]{1,128}){1,16}$/;

function tarHeader(name: string, size: number): Buffer {
  if (Buffer.byteLength(name) > 99) throw new Error(`tar: entry name too long: ${name}`);
  const h = Buffer.alloc(512);
  const put = (off: number, len: number, s: string) => h.write(s, off, len, "ascii");
  const oct = (off: number, len: number, n: number) => put(off, len, n.toString(8).padStart(len - 1, "0") + "\0");
  put(0, 100, name);
  oct(100, 8, 0o644);
  oct(108, 8, 0);
  oct(116, 8, 0);
  oct(124, 12, size);
  oct(136, 12, 0);
  put(148, 8, "        ");
  put(156, 1, "0");
  put(257, 8, "ustar\x0000");
  put(265, 32, "root");
  put(297, 32, "root");
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

function tarEntry(name: string, data: Buffer): Buffer[] {
  const pad = (512 - (data.length % 512)) % 512;
  return [tarHeader(name, data.length), data, Buffer.alloc(pad)];
}

/** The archive of `files` (each path checked, no duplicates). */
export function hostArchive(files: readonly ArchiveFile[]): HostArchive {
  const seen = new Set<string>();
  const lines = files.map((f, i) => {
    for (const p of [f.path, ...(f.link ? [f.link] : [])])
      if (!HOST_PATH.test(p) || p.split("/").some((c) => c === "." || c === ".."))
        throw new Error(`bundle: refusing to ship to ${JSON.stringify(p)}: not an absolute host path of safe names`);
    if (!/^0[0-7]{3}$/.test(f.mode)) throw new Error(`bundle: bad mode ${f.mode} for ${f.path}`);
    if (seen.has(f.path)) throw new Error(`bundle: ${f.path} is shipped twice`);
    seen.add(f.path);
    return `${i} ${f.mode} ${f.path} ${f.link ?? "-"} ${f.keep ? 1 : 0}\n`;
  });
  const manifest = lines.join("");
  const parts = [
    ...tarEntry("MANIFEST", Buffer.from(manifest)),
    ...files.flatMap((f, i) => tarEntry(`files/${i}`, Buffer.from(f.content, "utf8"))),
    Buffer.alloc(1024),
  ];
  const bytes = Buffer.concat(parts);
  return { digest: crypto.createHash("sha256").update(bytes).digest("hex"), bytes, manifest };
}

/**
 * Where the archive is written: the project's own cache (`node_modules/.cache`, as
 * components/start.js's transpile cache), never a shared temp dir. In /tmp another local
 * account could take the archive's name first (the copy then fails: a file of theirs cannot be
 * replaced there), or pre-create the temp name as a link; and every release left an archive
 * behind. The path is not compared between runs: the engine compares the asset by its hash.
 */
export const HOST_ARCHIVE_DIR = path.join(__dirname, "..", "node_modules", ".cache", "workstations-host-files");
const ARCHIVE_NAME = /^workstations-host-files-[0-9a-f]{32}\.tar$/;
/** An archive no run has written or used for this long is removed (each release makes one, about 450 KB). */
export const HOST_ARCHIVE_KEEP_MS = 7 * 24 * 3600 * 1000;

/**
 * Writes the archive where the engine and the command provider read it (content-addressed, so
 * the same content has the same path on every run), marks it used, removes archives unused for
 * a week, and returns the path. The host's install checks the copy against the digest too.
 */
export function writeHostArchive(a: HostArchive, dir = HOST_ARCHIVE_DIR, now = Date.now()): string {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `workstations-host-files-${a.digest.slice(0, 32)}.tar`);
  let same = false;
  try {
    same = fs.readFileSync(file).equals(a.bytes);
  } catch {
    /* not there yet */
  }
  if (same) fs.utimesSync(file, now / 1000, now / 1000);
  else {
    const tmp = `${file}.${crypto.randomBytes(6).toString("hex")}.tmp`;
    fs.writeFileSync(tmp, a.bytes, { mode: 0o600, flag: "wx" }); // wx: never through a link or over a file
    fs.utimesSync(tmp, now / 1000, now / 1000);
    fs.renameSync(tmp, file);
  }
  for (const n of fs.readdirSync(dir)) {
    const p = path.join(dir, n);
    if (p === file || !(ARCHIVE_NAME.test(n) || /\.tmp$/.test(n))) continue;
    try {
      if (now - fs.lstatSync(p).mtimeMs > HOST_ARCHIVE_KEEP_MS) fs.rmSync(p, { force: true });
    } catch {
      /* another run removed it */
    }
  }
  return file;
}
