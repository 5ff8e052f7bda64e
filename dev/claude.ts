/**
 * The real Claude Code CLI (the toolchain's `claude` part, @anthropic-ai/claude-code pinned in
 * dev/toolchain) for tests/claude: where it is, laid out for throwaway users the way npm and
 * the native installer lay it out, the fake Messages API (dev/fakes/anthropic-messages.ts)
 * as its own process, the pre-seeded ~/.claude.json and settings that let it start offline,
 * and driving its TUI inside real tmux (dev/tmux.ts users and servers).
 *
 * Offline: ANTHROPIC_BASE_URL = the fake, ANTHROPIC_API_KEY (approved in ~/.claude.json),
 * CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 and DISABLE_TELEMETRY=1, DISABLE_AUTOUPDATER=1,
 * DISABLE_ERROR_REPORTING=1. They go in ~/.claude/settings.json `env` (Claude applies it to
 * itself at start), so a claude started by anything (tmux-persist restore included, whose
 * servers have a clean environment) reaches the fake and nothing else.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as L from "./tmux";
import { readRecords, type MessagesFailure, type MessagesRequestRecord, lastUserText } from "./fakes/anthropic-messages";

export const ROOT = path.resolve(__dirname, "..");
export const CLAUDE_VERSION = "2.1.332";
/** The API key every test user's claude uses (the fake accepts any). */
export const FAKE_KEY = "sk-ant-api03-workstations-fake-key-0000000000000000-AAAA";

export class ClaudeMissingError extends Error {}

/** The toolchain's install dir of the pinned CLI (WORKSTATIONS_CLAUDE_DIR, else `dev/toolchain env`). */
export function toolchainClaudeDir(): string {
  if (process.env.WORKSTATIONS_CLAUDE_DIR) return process.env.WORKSTATIONS_CLAUDE_DIR;
  const out = spawnSync("bash", [path.join(ROOT, "dev/toolchain"), "env"], { encoding: "utf8" }).stdout ?? "";
  const m = /^export WORKSTATIONS_CLAUDE_DIR="(.*)"$/m.exec(out);
  return m ? m[1] : "";
}

/** Throws ClaudeMissingError naming the build command when the pinned binary is not there. */
export function requireClaude(): string {
  const dir = toolchainClaudeDir();
  const bin = path.join(dir, "node_modules/.bin/claude");
  if (!dir || !fs.existsSync(bin))
    throw new ClaudeMissingError(`the real Claude Code CLI is missing (${bin || "no WORKSTATIONS_CLAUDE_DIR"}): bash dev/toolchain build claude`);
  const v = spawnSync(bin, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30000 }).stdout ?? "";
  if (!v.startsWith(`${CLAUDE_VERSION} `))
    throw new ClaudeMissingError(`${bin} --version says ${JSON.stringify(v.trim())}, the tests pin ${CLAUDE_VERSION}: bash dev/toolchain build --force claude`);
  return dir;
}

/** undefined when the suite can run; a skip reason otherwise. Under CI=true never a skip. */
export function claudeSkip(): string | undefined {
  const base = L.cannotRun();
  if (base) return process.env.CI === "true" ? undefined : `SKIPPED (not under CI): ${base}`;
  try {
    requireClaude();
    return undefined;
  } catch (e) {
    if (!(e instanceof ClaudeMissingError)) throw e;
    if (process.env.CI === "true") return undefined; // before() then fails with the error
    return `SKIPPED (not under CI): ${e.message}`;
  }
}

export interface ClaudeInstall {
  /** the npm tree (…/claude-code with node_modules/) */
  dir: string;
  /** node_modules/.bin/claude, the link npm makes (what users run; argv[0]) */
  bin: string;
  /** the native binary the link points to (/proc/PID/exe) */
  exe: string;
}

/**
 * The pinned CLI under `base` (readable by the throwaway users, unlike root's cache): the npm
 * tree hard-linked (`cp -al`, no 400 MB copy), so exe is `…/@anthropic-ai/claude-code/bin/claude.exe`.
 */
export function installNpmLayout(base: string): ClaudeInstall {
  const src = requireClaude();
  const dir = path.join(base, "claude-code");
  const r = spawnSync("cp", ["-al", "--", src, dir], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`cp -al ${src} ${dir}: ${r.stderr}`);
  spawnSync("chmod", ["-R", "go+rX", dir]);
  return { dir, bin: path.join(dir, "node_modules/.bin/claude"), exe: path.join(dir, "node_modules/@anthropic-ai/claude-code/bin/claude.exe") };
}

/**
 * The native installer's layout in the user's home: ~/.local/share/claude/versions/<v> (the
 * binary, hard-linked) and ~/.local/bin/claude -> it. Returns the ~/.local/bin/claude path.
 */
export function installNativeLayout(u: L.TUser, inst: ClaudeInstall): { bin: string; exe: string } {
  const versions = L.userDir(u, ".local/share/claude/versions");
  const binDir = L.userDir(u, ".local/bin");
  const exe = path.join(versions, CLAUDE_VERSION);
  fs.rmSync(exe, { force: true });
  fs.linkSync(fs.realpathSync(inst.exe), exe);
  const bin = path.join(binDir, "claude");
  fs.rmSync(bin, { force: true });
  fs.symlinkSync(exe, bin);
  fs.lchownSync(bin, u.uid, u.gid);
  return { bin, exe };
}

// ---------------------------------------------------------------------------------------
// the fake Messages API as its own process (the test thread blocks in spawnSync/Atomics.wait)

const FAKES = new Set<FakeApiProcess>();

export class FakeApiProcess {
  url = "";
  readonly recordFile: string;
  readonly controlFile: string;
  private pid = 0;
  constructor(readonly dir: string) {
    this.recordFile = path.join(dir, "fake-api.jsonl");
    this.controlFile = path.join(dir, "fake-api.control.json");
  }
  start(): this {
    const urlFile = path.join(this.dir, "fake-api.url");
    fs.rmSync(urlFile, { force: true });
    const log = fs.openSync(path.join(this.dir, "fake-api.log"), "a");
    const child = spawn(
      process.execPath,
      [
        "--require",
        "ts-node/register/transpile-only",
        path.join(ROOT, "dev/fakes/anthropic-messages.ts"),
        "--url-file",
        urlFile,
        "--record-file",
        this.recordFile,
        "--control-file",
        this.controlFile,
      ],
      {
        cwd: ROOT,
        stdio: ["ignore", log, log],
        detached: true,
      },
    );
    fs.closeSync(log);
    child.unref();
    this.pid = child.pid ?? 0;
    FAKES.add(this);
    this.url = L.waitFor("the fake Messages API to listen", () => fs.existsSync(urlFile) && fs.readFileSync(urlFile, "utf8").trim(), 30000);
    return this;
  }
  stop(): void {
    FAKES.delete(this);
    if (!this.pid) return;
    try {
      process.kill(this.pid, "SIGTERM");
    } catch {
      /* gone */
    }
    this.pid = 0;
  }
  records(): MessagesRequestRecord[] {
    return readRecords(this.recordFile);
  }
  /** /v1/messages requests only */
  messages(): MessagesRequestRecord[] {
    return this.records().filter((r) => r.method === "POST" && r.path === "/v1/messages");
  }
  /** Requests whose last typed user text is exactly `text`. */
  requestsFor(text: string): MessagesRequestRecord[] {
    return this.messages().filter((r) => lastUserText(r.body) === text);
  }
  clear(): void {
    fs.writeFileSync(this.recordFile, "");
  }
  /** failure modes for the next requests / all requests (re-read by the fake on every request) */
  control(c: { failNext?: MessagesFailure[]; failAll?: MessagesFailure | null; seq?: number }): void {
    fs.writeFileSync(`${this.controlFile}.tmp`, JSON.stringify({ ...c, seq: Date.now() + Math.random() }));
    fs.renameSync(`${this.controlFile}.tmp`, this.controlFile);
  }
}
process.on("exit", () => {
  for (const f of [...FAKES]) f.stop();
});

// ---------------------------------------------------------------------------------------
// a user's Claude config for offline runs

/** The `env` Claude applies to itself from ~/.claude/settings.json: the fake and nothing else. */
export function offlineEnv(url: string): Record<string, string> {
  return {
    ANTHROPIC_BASE_URL: url,
    ANTHROPIC_API_KEY: FAKE_KEY,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_TELEMETRY: "1",
    DISABLE_AUTOUPDATER: "1",
    DISABLE_ERROR_REPORTING: "1",
  };
}

function writeAsUser(u: L.TUser, file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text, { mode });
  fs.chownSync(tmp, u.uid, u.gid);
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

/**
 * What a first run would otherwise ask interactively, pre-seeded: onboarding done, the API
 * key approved (Claude keeps its last 20 characters), every project dir trusted. Merged into
 * an existing ~/.claude.json (Claude rewrites it as it runs). And ~/.claude (0700, as the
 * program makes it) with settings.json (0600) holding `offlineEnv` plus `extra` (without the
 * API key when `apiKey` is false).
 */
export function seedUser(u: L.TUser, o: { url: string; projects: string[]; settings?: Record<string, unknown>; apiKey?: boolean }): void {
  const cfgFile = path.join(u.home, ".claude.json");
  let cfg: any = {};
  try {
    cfg = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
  } catch {
    cfg = {};
  }
  cfg.hasCompletedOnboarding = true;
  cfg.customApiKeyResponses = { approved: [FAKE_KEY.slice(-20)], rejected: [] };
  cfg.projects ??= {};
  for (const p of o.projects) cfg.projects[p] = { ...(cfg.projects[p] ?? {}), hasTrustDialogAccepted: true };
  writeAsUser(u, cfgFile, JSON.stringify(cfg, null, 2), 0o600);
  const dir = path.join(u.home, ".claude");
  if (!fs.existsSync(dir)) fs.mkdirSync(dir);
  fs.chownSync(dir, u.uid, u.gid);
  fs.chmodSync(dir, 0o700);
  const env: Record<string, string> = { ...offlineEnv(o.url), ...((o.settings?.env as Record<string, string>) ?? {}) };
  // apiKey false: no key, so Claude authenticates with its login (or CLAUDE_CODE_OAUTH_TOKEN)
  if (o.apiKey === false) delete env.ANTHROPIC_API_KEY;
  const settings = { ...(o.settings ?? {}), env };
  writeAsUser(u, path.join(dir, "settings.json"), JSON.stringify(settings, null, 2), 0o600);
}

// ---------------------------------------------------------------------------------------
// Claude's own records

export interface SessionFile {
  pid: number;
  sessionId: string;
  cwd: string;
  startedAt: number;
  procStart: string;
  version: string;
  tmux?: string;
  status?: string;
  kind?: string;
  [k: string]: unknown;
}

export function sessionFile(u: L.TUser, pid: number, configDir = path.join(u.home, ".claude")): SessionFile | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(configDir, "sessions", `${pid}.json`), "utf8")) as SessionFile;
  } catch {
    return null;
  }
}

/** Wait until `file` has not changed for `quietMs` (Claude's last status write is done). */
export function settle(file: string, quietMs = 1500, timeoutMs = 20000): void {
  let last = "";
  let since = Date.now();
  L.waitFor(
    `${file} to settle`,
    () => {
      let cur = "";
      try {
        const st = fs.statSync(file);
        cur = `${st.mtimeMs}:${st.size}:${st.ino}`;
      } catch {
        cur = "missing";
      }
      if (cur !== last) {
        last = cur;
        since = Date.now();
      }
      return Date.now() - since >= quietMs;
    },
    timeoutMs,
  );
}

/** /proc/PID/stat field 22 (start time in clock ticks since boot), as Claude writes procStart. */
export function procStart(pid: number): string {
  const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return s.slice(s.lastIndexOf(")") + 2).split(" ")[19];
}

let pinnedIno = -1;
/** Live real-claude processes of uid: their exe is the pinned binary (the same inode: every layout here is a hard link of it). */
export function claudeProcs(uid: number): { pid: number; ppid: number; exe: string; argv: string[]; cwd: string }[] {
  if (pinnedIno < 0) pinnedIno = fs.statSync(path.join(requireClaude(), "node_modules/@anthropic-ai/claude-code/bin/claude.exe")).ino;
  const out = [];
  for (const pid of L.pidsOf(uid)) {
    try {
      if (fs.statSync(`/proc/${pid}/exe`).ino !== pinnedIno) continue;
      const exe = fs.readlinkSync(`/proc/${pid}/exe`);
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      out.push({ pid, ppid, exe, argv: fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean), cwd: fs.readlinkSync(`/proc/${pid}/cwd`) });
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The claude process running in a pane (the pane pid itself or its nearest claude descendant). */
export function claudeOfPane(u: L.TUser, panePid: number): number | null {
  const procs = claudeProcs(u.uid);
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  if (byPid.has(panePid)) return panePid;
  for (const p of procs) {
    let q: number = p.ppid;
    for (let guard = 0; q > 1 && guard < 16; guard++) {
      if (q === panePid) return p.pid;
      try {
        const st = fs.readFileSync(`/proc/${q}/stat`, "utf8");
        q = Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]);
      } catch {
        break;
      }
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// the TUI in tmux

export function capture(env: L.Env, u: L.TUser, target: string): string {
  const r = L.tmux(env, u, ["capture-pane", "-p", "-J", "-S", "-200", "-t", target], true);
  return r.status === 0 ? r.stdout : "";
}

/** Wait until the TUI's prompt is up (the banner with the version and the input box). */
export function waitReady(env: L.Env, u: L.TUser, target: string, timeoutMs = 45000): string {
  return waitScreen(env, u, target, `claude's prompt`, (t) => t.includes(`Claude Code v${CLAUDE_VERSION}`) && /^❯\s*$/m.test(t), timeoutMs);
}

/** Wait until the pane's text satisfies `ok`; the error shows the last screen. */
export function waitScreen(env: L.Env, u: L.TUser, target: string, what: string, ok: (screen: string) => boolean, timeoutMs = 45000): string {
  let last = "";
  try {
    return L.waitFor(
      `${what} in ${target}`,
      () => {
        last = capture(env, u, target);
        return ok(last) && last;
      },
      timeoutMs,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; the pane shows:\n${last.replace(/\n{3,}/g, "\n\n")}`, { cause: e });
  }
}

/** Type a line into the TUI and press Enter (the text literally, then Enter on its own). */
export function type(env: L.Env, u: L.TUser, target: string, text: string): void {
  L.tmux(env, u, ["send-keys", "-t", target, "-l", text]);
  L.sleep(300);
  L.tmux(env, u, ["send-keys", "-t", target, "Enter"]);
}

/**
 * Send a message and wait for the fake's answer to be on screen. Returns the answer text.
 * `text` should be unique in the test (the fake's default answer quotes it).
 */
export function say(env: L.Env, u: L.TUser, target: string, fake: FakeApiProcess, text: string, timeoutMs = 45000): string {
  type(env, u, target, text);
  const rec = L.waitFor(`the fake to get "${text}"`, () => fake.requestsFor(text).find((r) => r.answer), timeoutMs);
  const answer = rec.answer as string;
  waitScreen(env, u, target, `the answer to "${text}" on screen`, (t) => t.includes(answer), timeoutMs);
  return answer;
}

/** `/clear`: Claude starts a new conversation in the same process. */
export function clear(env: L.Env, u: L.TUser, target: string, pid: number, timeoutMs = 20000): string {
  const before = sessionFile(u, pid)?.sessionId;
  type(env, u, target, "/clear");
  return L.waitFor(
    `a new sessionId for ${pid} after /clear`,
    () => {
      const s = sessionFile(u, pid)?.sessionId;
      return s && s !== before && s;
    },
    timeoutMs,
  );
}

/** Wait for the session file of the claude in the pane; returns pid and file. */
export function waitSession(env: L.Env, u: L.TUser, target: string, timeoutMs = 45000): { pid: number; file: SessionFile } {
  const panePid = Number(L.tmux(env, u, ["display-message", "-p", "-t", target, "#{pane_pid}"]).stdout.trim());
  return L.waitFor(
    `claude's session file for ${target}`,
    () => {
      const pid = claudeOfPane(u, panePid);
      const file = pid ? sessionFile(u, pid) : null;
      return pid && file ? { pid, file } : null;
    },
    timeoutMs,
  );
}

/**
 * argv prefix that runs a command in a private mount namespace where each `lower` dir shows
 * the files of `upper` over it (overlayfs): e.g. /etc with claude-code/managed-settings.json
 * added, without touching this machine's /etc. A tmux server started through it (and every
 * pane it runs) stays in that namespace.
 */
export function overlayNs(work: string, overlays: { lower: string; upper: string }[]): string[] {
  const mounts = overlays.map((o, i) => {
    const w = path.join(work, `ovl-work-${i}`);
    fs.mkdirSync(w, { recursive: true });
    return `mount -t overlay overlay -o lowerdir=${o.lower},upperdir=${o.upper},workdir=${w} ${o.lower}`;
  });
  return ["unshare", "--mount", "--propagation", "private", "sh", "-c", `${mounts.join(" && ")} && exec "$@"`, "sh"];
}
