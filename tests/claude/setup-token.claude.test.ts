/**
 * The setup-token mode with the real CLI (issue 24 item 1; README "Claude logins"): a real
 * Claude started by a login shell, by the launcher in tmux and by tmux-persist's restore reads
 * ~/.claude-oauth-token through /etc/profile.d/workstations-claude-token.sh (the shipped
 * snippet, shown over /etc in a private mount namespace) and sends that token: the fake
 * Messages API records which credential each request carried (by hash). The user has no API
 * key and no login of their own, so the token is the only way in.
 *
 * Needs root. Under CI=true a missing claude binary fails.
 */
import { after, before, beforeEach, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import * as L from "../../dev/tmux";
import * as C from "../../dev/claude";
import { authHash } from "../../dev/fakes/anthropic-messages";
import { ZSH_PROFILE_LINE } from "../../components/scripts/hostFiles";

const skip = C.claudeSkip();
const ROOT = path.resolve(__dirname, "../..");

describe("setup-token mode: every Claude start reads the token (real CLI)", { skip: skip ?? false, timeout: 15 * 60_000 }, () => {
  let env: L.Env;
  let U: L.TUser;
  let inst: C.ClaudeInstall;
  let fake: C.FakeApiProcess;
  let etcUp: string;
  let usersFile: string;
  let n = 0;
  const token = `sk-ant-oat01-${crypto.randomBytes(60).toString("base64url")}`;
  const PATHV = () => `${path.dirname(inst.bin)}:/usr/local/bin:/usr/bin:/bin`;
  /** argv prefix: a private mount namespace with the shipped snippet in /etc/profile.d */
  const ns = () => C.overlayNs(path.join(env.base, `ns-${++n}`), [{ lower: "/etc", upper: etcUp }]);
  const userEnvArgs = () => Object.entries(L.userEnv(env, U, { PATH: PATHV() })).map(([k, v]) => `${k}=${v}`);
  const proj = (rel: string) => {
    const d = L.userDir(U, rel);
    C.seedUser(U, { url: fake.url, projects: [d], apiKey: false });
    return d;
  };
  const authOf = (text: string) => fake.requestsFor(text).map((r) => r.auth);

  before(() => {
    if (skip === undefined) C.requireClaude();
    env = L.setupEnv(1);
    [U] = env.users;
    inst = C.installNpmLayout(env.base);
    fake = new C.FakeApiProcess(env.base).start();
    C.seedUser(U, { url: fake.url, projects: [], apiKey: false });
    etcUp = path.join(env.base, "etc-up");
    fs.mkdirSync(path.join(etcUp, "profile.d"), { recursive: true, mode: 0o755 });
    fs.copyFileSync(path.join(ROOT, "config/claude-token.sh"), path.join(etcUp, "profile.d/workstations-claude-token.sh"));
    fs.chmodSync(path.join(etcUp, "profile.d/workstations-claude-token.sh"), 0o644);
    // zsh's login profile as the host files leave it: the distribution's, plus the one line
    const zprofile = fs.existsSync("/etc/zsh/zprofile") ? fs.readFileSync("/etc/zsh/zprofile", "utf8") : "";
    fs.mkdirSync(path.join(etcUp, "zsh"), { mode: 0o755 });
    fs.writeFileSync(path.join(etcUp, "zsh/zprofile"), `${zprofile}${ZSH_PROFILE_LINE}\n`, { mode: 0o644 });
    const f = path.join(U.home, ".claude-oauth-token");
    fs.writeFileSync(f, `${token}\n`, { mode: 0o600 });
    fs.chownSync(f, U.uid, U.gid);
    const launcher = path.join(U.home, "start-claude.sh");
    fs.copyFileSync(path.join(ROOT, "config/start-claude.sh"), launcher);
    fs.chmodSync(launcher, 0o755);
    usersFile = path.join(env.base, "users.json");
    L.writeUsersJson(usersFile, [{ u: U }]);
  });
  after(() => {
    fake?.stop();
    if (env) L.teardownEnv(env);
  });
  beforeEach(() => {
    L.killUser(env, U);
    fake.clear();
  });

  test("login shells (bash -l, zsh -l): claude -p sends the delivered token, and nothing else authenticates it", () => {
    const d = proj("login-shell");
    const run = (script: string) => {
      const pre = ns();
      return spawnSync(pre[0], [...pre.slice(1), "/usr/sbin/runuser", "-u", U.name, "--", "env", "-i", ...userEnvArgs(), "bash", "-lc", script], {
        cwd: "/",
        encoding: "utf8",
        timeout: 120_000,
      });
    };
    // (a login shell sets its own PATH: claude by its path)
    const r = run(`cd '${d}' && '${inst.bin}' -p 'setup token login shell'`);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.deepEqual(authOf("setup token login shell"), [authHash(token)]);
    // zsh reads /etc/zsh/zprofile, not /etc/profile: the host files' one line there
    const z = run(`exec zsh -l -c "cd '${d}' && '${inst.bin}' -p 'setup token zsh login shell'"`);
    assert.equal(z.status, 0, `zsh (bash dev/setup installs it): ${z.stdout}\n${z.stderr}`);
    assert.deepEqual(authOf("setup token zsh login shell"), [authHash(token)]);
    // the same shell without the snippet's variable: no credential at all, so the token above came from the file
    const r2 = run(`unset CLAUDE_CODE_OAUTH_TOKEN; cd '${d}' && '${inst.bin}' -p 'no token here'`);
    assert.notEqual(r2.status, 0, "claude without the token has nothing to authenticate with");
    assert.ok(authOf("no token here").every((a) => a !== authHash(token)));
  });

  test("the launcher in tmux, then tmux-persist's restore: both Claudes send the token", () => {
    const d = proj("launcher");
    const pre = ns();
    const launcher = path.join(U.home, "start-claude.sh");
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
        ...userEnvArgs(),
        "tmux",
        "-u",
        "new-session",
        "-d",
        "-s",
        "tok",
        "-x",
        "200",
        "-y",
        "50",
        "-c",
        d,
        launcher,
      ],
      { encoding: "utf8", cwd: "/" },
    );
    assert.equal(r.status, 0, r.stderr);
    C.waitReady(env, U, "tok");
    C.say(env, U, "tok", fake, "launcher setup token check");
    assert.deepEqual(authOf("launcher setup token check"), [authHash(token)]);
    C.waitSession(env, U, "tok");

    // save, kill the server, restore (in the namespace: the resume sources the snippet)
    const stateDir = path.join(env.base, "tp-state");
    const tp = (cmd: string) => {
      const p = ns();
      const x = spawnSync(
        p[0],
        [...p.slice(1), process.execPath, L.SCRIPT, cmd, "--users-file", usersFile, "--state-dir", stateDir, "--claude-bin", inst.bin],
        {
          encoding: "utf8",
          env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" },
          timeout: 120_000,
        },
      );
      assert.equal(x.status, 0, `${cmd}: ${x.stderr}`);
    };
    tp("save");
    L.killUser(env, U);
    fake.clear();
    tp("restore");
    C.waitReady(env, U, "tok");
    const pid = L.waitFor("the resumed claude", () =>
      L.livePanes(env, U)
        .map((p) => C.claudeOfPane(U, p.panePid))
        .find(Boolean),
    );
    assert.deepEqual(
      C.claudeProcs(U.uid)
        .find((q) => q.pid === pid)
        ?.argv.slice(1, 2),
      ["--resume"],
      "restored with --resume",
    );
    C.say(env, U, "tok", fake, "restored setup token check");
    assert.deepEqual(authOf("restored setup token check"), [authHash(token)]);
  });
});
