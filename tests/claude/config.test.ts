/**
 * Config inheritance seen from the real Claude Code CLI (2.1.332): with the program's
 * /etc/claude-code/managed-settings.json (config/managed-settings.json) and the ~/.claude
 * links to the shared base (config/claude-base, installed at CLAUDE_BASE), the fake Messages
 * API records the request Claude sends, and the test reads it.
 *
 * This machine's /etc is never touched: each claude runs in a private mount namespace whose
 * /etc and /usr/local/share are overlays adding exactly the files the host component installs
 * (dev/claude.ts overlayNs). Needs root (throwaway users, unshare, mount). Under CI=true a
 * missing binary fails.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import * as L from "../../dev/tmux";
import * as C from "../../dev/claude";
import { requestTexts, type MessagesRequestRecord } from "../../dev/fakes/anthropic-messages";
import { CLAUDE_BASE, CLAUDE_BASE_LINKS } from "../../components/plan";

const ROOT = path.resolve(__dirname, "..", "..");
const MANAGED_FILE = path.join(ROOT, "config/managed-settings.json");
const managed = JSON.parse(fs.readFileSync(MANAGED_FILE, "utf8"));
const skip = C.claudeSkip();

describe("config inheritance, as real claude sends it", { skip: skip ?? false, timeout: 15 * 60_000 }, () => {
  let env: L.Env;
  let U: L.TUser;
  let inst: C.ClaudeInstall;
  let fake: C.FakeApiProcess;
  let proj: string;
  /** /etc uppers: the program's file, the same without its `env` pin, and nothing */
  const etc: Record<"program" | "unpinned" | "none", string> = { program: "", unpinned: "", none: "" };
  let share: string;
  let n = 0;

  function etcUpper(name: string, settings: object | null): string {
    const up = path.join(env.base, `etc-${name}`);
    fs.mkdirSync(path.join(up, "claude-code"), { recursive: true, mode: 0o755 });
    if (settings)
      fs.writeFileSync(path.join(up, "claude-code/managed-settings.json"), typeof settings === "string" ? settings : JSON.stringify(settings, null, 2), {
        mode: 0o644,
      });
    else fs.rmSync(path.join(up, "claude-code"), { recursive: true });
    return up;
  }
  const ns = (which: keyof typeof etc) =>
    C.overlayNs(path.join(env.base, `ns-${which}-${++n}`), [
      { lower: "/etc", upper: etc[which] },
      { lower: "/usr/local/share", upper: share },
    ]);

  /** `claude -p TEXT` as U in the project dir, in the namespace; returns the request(s) the fake got for TEXT. */
  function runPrint(
    text: string,
    o: { managed?: keyof typeof etc; settings?: Record<string, unknown>; shellEnv?: Record<string, string>; args?: string[] } = {},
  ): { out: string; reqs: MessagesRequestRecord[] } {
    C.seedUser(U, { url: fake.url, projects: [proj], settings: o.settings });
    const envArgs = Object.entries({ HOME: U.home, USER: U.name, PATH: "/usr/bin:/bin", LANG: "C.UTF-8", ...(o.shellEnv ?? {}) }).map(([k, v]) => `${k}=${v}`);
    const r = spawnSync(
      ns(o.managed ?? "program")[0],
      [...ns(o.managed ?? "program").slice(1), "runuser", "-u", U.name, "--", "env", "-i", ...envArgs, inst.bin, "-p", text, ...(o.args ?? [])],
      {
        cwd: proj,
        encoding: "utf8",
        timeout: 90_000,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    assert.equal(r.status, 0, `claude -p failed (${r.status}): ${r.stdout}\n${r.stderr}`);
    return { out: r.stdout, reqs: fake.requestsFor(text) };
  }
  const allText = (q: MessagesRequestRecord) => {
    const t = requestTexts(q.body);
    return t.system + "\n" + t.messages;
  };
  const carries = (reqs: MessagesRequestRecord[], needle: string) => reqs.length > 0 && reqs.every((q) => allText(q).includes(needle));

  before(() => {
    if (skip === undefined) C.requireClaude(); // under CI=true a missing binary fails here
    env = L.setupEnv(1);
    [U] = env.users;
    inst = C.installNpmLayout(env.base);
    fake = new C.FakeApiProcess(env.base).start();
    etc.program = etcUpper("program", JSON.parse(fs.readFileSync(MANAGED_FILE, "utf8")));
    const { env: _pin, ...unpinned } = managed;
    etc.unpinned = etcUpper("unpinned", unpinned);
    etc.none = path.join(env.base, "etc-none");
    fs.mkdirSync(etc.none, { mode: 0o755 });
    // /usr/local/share/workstations/claude-base as the host component installs it
    share = path.join(env.base, "share");
    const baseDir = path.join(share, path.relative("/usr/local/share", CLAUDE_BASE));
    fs.mkdirSync(path.dirname(baseDir), { recursive: true, mode: 0o755 });
    fs.cpSync(path.join(ROOT, "config/claude-base"), baseDir, { recursive: true });
    spawnSync("chmod", ["-R", "go+rX", share]);
    // the home as home-user leaves it: ~/.claude 0700, the base links, settings.json 0600
    C.seedUser(U, { url: fake.url, projects: [] });
    for (const l of CLAUDE_BASE_LINKS) {
      const p = path.join(U.home, ".claude", l);
      fs.symlinkSync(`${CLAUDE_BASE}/${l}`, p);
      fs.lchownSync(p, U.uid, U.gid);
    }
    proj = L.userDir(U, "proj");
  });
  after(() => {
    fake?.stop();
    if (env) L.teardownEnv(env);
  });

  test("the TUI in tmux: the managed claudeMd, the linked rules and skills reach the request", () => {
    C.seedUser(U, { url: fake.url, projects: [proj] });
    const pre = ns("program");
    const r = spawnSync(
      pre[0],
      [
        ...pre.slice(1),
        "/usr/sbin/runuser",
        "-u",
        U.name,
        "--",
        "env",
        "-i",
        ...Object.entries(L.userEnv(env, U)).map(([k, v]) => `${k}=${v}`),
        "tmux",
        "-u",
        "new-session",
        "-d",
        "-s",
        "cfg",
        "-x",
        "200",
        "-y",
        "50",
        "-c",
        proj,
        inst.bin,
      ],
      { encoding: "utf8", cwd: "/" },
    );
    assert.equal(r.status, 0, r.stderr);
    C.waitReady(env, U, "cfg");
    C.say(env, U, "cfg", fake, "config inheritance tui check");
    const [q] = fake.requestsFor("config inheritance tui check");
    const text = allText(q);
    assert.ok(text.includes(managed.claudeMd.trim()), "the managed claudeMd, verbatim");
    assert.match(text, /Contents of <managed-settings> \(organization-managed policy instructions\):\s*\n\s*# Devvm rules \(managed by workstations\)/);
    const rules = fs.readFileSync(path.join(ROOT, "config/claude-base/rules/devvm.md"), "utf8").trim();
    assert.ok(text.includes(rules), "~/.claude/rules (linked to the base) reaches the request");
    assert.match(text, /- commit-intent: Write a commit message whose body states the user's plain-language intent\./, "the linked skill is offered");
    L.killUser(env, U);
  });

  test("a user's own settings cannot remove it (the program's env pin holds); without the pin the env switch would", () => {
    const attempts: { name: string; settings?: Record<string, unknown>; shellEnv?: Record<string, string>; args?: string[] }[] = [
      { name: "user claudeMd empty", settings: { claudeMd: "" } },
      { name: "user claudeMdExcludes", settings: { claudeMdExcludes: ["**", "/etc/claude-code/**", "**/managed-settings.json"] } },
      { name: "user settings env CLAUDE_CODE_DISABLE_CLAUDE_MDS=1", settings: { env: { CLAUDE_CODE_DISABLE_CLAUDE_MDS: "1" } } },
      { name: "user settings env, admin env union off", settings: { env: { CLAUDE_CODE_DISABLE_CLAUDE_MDS: "1", CLAUDE_CODE_DISABLE_ADMIN_ENV_UNION: "1" } } },
      { name: "shell env CLAUDE_CODE_DISABLE_CLAUDE_MDS=1", shellEnv: { CLAUDE_CODE_DISABLE_CLAUDE_MDS: "1" } },
      { name: "--setting-sources user", args: ["--setting-sources", "user"] },
      { name: "--settings with the env switch", args: ["--settings", JSON.stringify({ env: { CLAUDE_CODE_DISABLE_CLAUDE_MDS: "1" } })] },
    ];
    for (const a of attempts) {
      const { reqs } = runPrint(`removal attempt: ${a.name}`, a);
      assert.ok(carries(reqs, managed.claudeMd.trim()), `${a.name}: the managed claudeMd is gone from the request`);
    }
    // the controls: the same switch without the managed env pin, and no managed file at all
    const unpinned = runPrint("control: unpinned + settings env switch", { managed: "unpinned", settings: { env: { CLAUDE_CODE_DISABLE_CLAUDE_MDS: "1" } } });
    assert.ok(!carries(unpinned.reqs, managed.claudeMd.trim()) && unpinned.reqs.length === 1, "without the pin a user's settings env would switch it off");
    const unpinnedShell = runPrint("control: unpinned + shell env switch", { managed: "unpinned", shellEnv: { CLAUDE_CODE_DISABLE_CLAUDE_MDS: "1" } });
    assert.ok(!carries(unpinnedShell.reqs, managed.claudeMd.trim()) && unpinnedShell.reqs.length === 1);
    const unpinnedPlain = runPrint("control: unpinned, nothing switched", { managed: "unpinned" });
    assert.ok(carries(unpinnedPlain.reqs, managed.claudeMd.trim()), "claudeMd itself does not depend on the pin");
    const noFile = runPrint("control: no managed file", { managed: "none" });
    assert.ok(!carries(noFile.reqs, managed.claudeMd.trim()) && noFile.reqs.length === 1, "the text comes from the managed file");
    // a user-level claudeMd is not a source: only managed settings are
    const userMd = runPrint("control: user-level claudeMd", { managed: "none", settings: { claudeMd: "USER-LEVEL-CLAUDEMD-MARKER" } });
    assert.ok(!allText(userMd.reqs[0]).includes("USER-LEVEL-CLAUDEMD-MARKER"), "claudeMd is honoured from managed settings only");
  });

  test("--bare (a command-line flag, not a setting) does drop it: stated in the README", () => {
    const { reqs } = runPrint("bare mode", { args: ["--bare"], shellEnv: C.offlineEnv(fake.url) });
    assert.equal(reqs.length, 1);
    assert.ok(!allText(reqs[0]).includes(managed.claudeMd.trim()));
  });

  test("managed permissions.deny holds against a user allow rule and --dangerously-skip-permissions", () => {
    const cred = path.join(U.home, ".git-credentials");
    fs.writeFileSync(cred, "https://u:SECRET-GIT-CRED@forgejo.example\n", { mode: 0o600 });
    fs.chownSync(cred, U.uid, U.gid);
    const ask = `FAKE-TOOL Read ${JSON.stringify({ file_path: cred })}`;
    const allow = { permissions: { allow: ["Read(~/.git-credentials)", `Read(/${U.home}/**)`] } };
    const denied = runPrint(ask, { settings: allow });
    assert.match(denied.out, /^TOOL-RESULT error: <tool_use_error>File is in a directory that is denied by your permission settings\.<\/tool_use_error>/m);
    fake.clear();
    const skipped = runPrint(ask, { args: ["--dangerously-skip-permissions"] });
    assert.match(skipped.out, /TOOL-RESULT error: .*denied by your permission settings/);
    assert.ok(!fake.records().some((r) => JSON.stringify(r.body).includes("SECRET-GIT-CRED")), "the file never reached the API");
    // the control: without the managed file the same user allow rule lets it through
    fake.clear();
    const open = runPrint(ask, { managed: "none", settings: allow });
    assert.match(open.out, /TOOL-RESULT ok: .*SECRET-GIT-CRED/);
  });
});
