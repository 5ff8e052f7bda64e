/**
 * The web surfaces' identity files and T3 servers on the real systemd test host (issue 22,
 * items 2 and 6): the `web-apply` verb as the WebAccess resource runs it, for the example
 * roster and its changes.
 *
 *  - Formats, modes and owners of every file, byte-equal to the pure plan's (components/plan/web.ts);
 *    `visudo -c` accepts the sudoers; `sudo -l -U ttyd` lists exactly the planned grants.
 *  - The T3 units (a stand-in `t3`, dev/fakes/t3: T3 cannot be installed here) serve on their
 *    sticky port as their user, with the note's caps.
 *  - Suspending, offboarding and T3 off take a user out of every file and `disable --now` their
 *    unit in that one run; ports stay with their user across removals and re-adds, and are
 *    never handed to anyone else.
 *  - A hand edit is put back: by the host's workstations-web.path at once, and by the next run.
 *  - A sudoers file that visudo refuses is never installed.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { planRoster, type Plan } from "../../components/plan";
import { adminsFile, dispatchJson, sudoGrants, sudoersFile, t3EnvFile, userMapFile } from "../../components/plan/web";
import { parseRoster } from "../../components/roster/load";
import type { Roster } from "../../components/roster/schema";
import { accountApplyScript, hostLibInstallScript, hostLibrary, libCommand, webApplyScript } from "../../components/scripts/hostLib";
import { webApplyParams } from "../../components/scripts/web";
import { preflightScript } from "../../components/scripts/host";
import {
  CLAUDE_TOKEN_ENV,
  CLAUDE_TOKEN_FILE,
  T3_DIR,
  T3_DISPATCH,
  T3_PORT_LEDGER,
  TTYD_ADMINS,
  TTYD_SUDOERS,
  TTYD_USER_MAP,
  WEB_APPLY,
} from "../../components/hostContract";
import { readExampleRoster } from "../../dev/mocks";
import { boot, createHost, destroyHost, run, type TestHost } from "../../dev/testhost/testhost";
import { waitFor } from "../../dev/wait";

const ROOT = path.resolve(__dirname, "..", "..");
const UNIT_FILES = ["t3-serve@.service", "workstations-web.path", "workstations-web.service"];

/** The example roster with `edit` applied to a copy (by name), planned. */
function planned(edit: (users: Roster["users"]) => void = () => {}): Plan {
  const r = parseRoster(readExampleRoster(), "roster.example.yaml").roster!;
  edit(r.users);
  return planRoster(r);
}
const set = (name: string, change: Partial<Roster["users"][number]>) => (users: Roster["users"]) => {
  Object.assign(
    users.find((u) => u.name === name)!,
    change,
  );
};

describe("web access files and T3 units on the systemd host", { timeout: 30 * 60_000 }, () => {
  let h: TestHost;
  const tryRun = (cmd: string, stdin?: string) => run(h, cmd, { stdin, check: false });
  const sh = async (cmd: string, stdin?: string) => (await run(h, cmd, { stdin })).stdout.trim();
  const cat = (f: string) => run(h, `cat ${f}`).then((r) => r.stdout);
  const mode = (f: string) => sh(`stat -c '%a %U:%G' ${f}`);
  /** Applies the accounts of `plan` (all of them, suspended ones cut) and then web-apply, as one `up` does. */
  const up = async (plan: Plan) => {
    for (const u of plan.users) {
      const r = await tryRun(accountApplyScript(u));
      assert.equal(r.code, 0, `account-apply ${u.name}: ${r.stderr}`);
    }
    const r = await tryRun(webApplyScript(plan.web));
    assert.equal(r.code, 0, `web-apply: ${r.stdout}${r.stderr}`);
    return r;
  };
  const ledger = async () =>
    Object.fromEntries(
      (await cat(T3_PORT_LEDGER))
        .trim()
        .split("\n")
        .map((l) => [l.split(" ")[1], Number(l.split(" ")[0])]),
    ) as Record<string, number>;
  /** The `(user) NOPASSWD: …` lines `sudo -l -U ttyd` prints. */
  const sudoList = async () =>
    (await sh("sudo -l -U ttyd"))
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => /^\(.*\) /.test(l))
      .sort();
  /** Every file is what the plan says, with the host's ports. */
  const assertFiles = async (plan: Plan, what: string) => {
    const ports = await ledger();
    assert.equal(await cat(TTYD_USER_MAP), userMapFile(plan.web), `${what}: ${TTYD_USER_MAP}`);
    assert.equal(await cat(TTYD_ADMINS), adminsFile(plan.web), `${what}: ${TTYD_ADMINS}`);
    assert.equal(await cat(TTYD_SUDOERS), sudoersFile(plan.web), `${what}: ${TTYD_SUDOERS}`);
    assert.equal(await cat(T3_DISPATCH), dispatchJson(plan.web, ports), `${what}: ${T3_DISPATCH}`);
    const envs = (await sh(`cd ${T3_DIR} && ls -1 *.env 2>/dev/null || true`)).split("\n").filter(Boolean).sort();
    assert.deepEqual(envs, plan.web.t3.map((i) => `${i.user}.env`).sort(), `${what}: the env files`);
    for (const i of plan.web.t3) assert.equal(await cat(`${T3_DIR}/${i.user}.env`), t3EnvFile(ports[i.user]), `${what}: ${i.user}.env`);
    assert.deepEqual(await sudoList(), sudoGrants(plan.web), `${what}: sudo -l -U ttyd lists exactly the planned grants`);
    assert.equal((await tryRun("visudo -c")).code, 0, `${what}: visudo -c`);
  };
  /** Whose stand-in T3 answers on `port` (undefined: nothing answers). */
  const t3At = async (port: number) => {
    const r = await tryRun(`curl -s --max-time 2 http://127.0.0.1:${port}/`);
    return r.code === 0 ? (JSON.parse(r.stdout) as { user: string; port: number }) : undefined;
  };
  const unitState = (u: string) => sh(`systemctl is-enabled t3-serve@${u}.service || true; systemctl is-active t3-serve@${u}.service || true`);

  before(async () => {
    h = await createHost("web");
    await boot(h);
    await sh("install -d -m 0755 /usr/local/lib/workstations /etc/workstations && install -d -m 0700 /var/lib/workstations");
    await sh(preflightScript(["/bin/bash"]));
    await sh(hostLibInstallScript(), hostLibrary().content);
    for (const u of UNIT_FILES) await sh(`cat > /etc/systemd/system/${u}`, fs.readFileSync(path.join(ROOT, "scripts/units", u), "utf8"));
    await sh("systemctl daemon-reload");
    await sh("cat > /usr/local/bin/t3 && chmod 0755 /usr/local/bin/t3", fs.readFileSync(path.join(ROOT, "dev/fakes/t3"), "utf8"));
    // The web terminal's service account (item 3 creates it; the team's package has its own).
    await sh("useradd --system --no-create-home --shell /usr/sbin/nologin ttyd");
  });
  after(async () => {
    if (h) await destroyHost(h);
  });

  test("the example roster: every file as planned (formats, modes), visudo -c, sudo -l, T3 served as each user on its port", async () => {
    const plan = planned();
    const first = await up(plan);
    await assertFiles(plan, "first run");
    assert.equal(await mode(TTYD_USER_MAP), "644 root:root");
    assert.equal(await mode(TTYD_ADMINS), "644 root:root");
    assert.equal(await mode(TTYD_SUDOERS), "440 root:root");
    assert.equal(await mode(T3_DISPATCH), "644 root:root");
    assert.equal(await mode(T3_PORT_LEDGER), "600 root:root");
    assert.equal(await mode(WEB_APPLY), "700 root:root");
    for (const i of plan.web.t3) assert.equal(await mode(`${T3_DIR}/${i.user}.env`), "600 root:root");
    const ports = await ledger();
    assert.deepEqual({ ...ports }, { emo: 3773, nadia: 3774, viktor: 3775 }, "ports from 3773 up, in the plan's (SSO) order");
    for (const u of ["emo", "nadia", "viktor"]) {
      assert.equal(await unitState(u), "enabled\nactive", `t3-serve@${u}`);
      const got = await waitFor(`${u}'s T3 on ${ports[u]}`, () => t3At(ports[u]));
      assert.deepEqual([got.user, got.port], [u, ports[u]], `port ${ports[u]} is ${u}'s own server`);
    }
    assert.equal(await unitState("sam"), "disabled\ninactive", "suspended sam has no T3");
    const show = await sh("systemctl show t3-serve@emo.service -p User -p MemoryMax -p MemorySwapMax -p OOMPolicy -p EnvironmentFiles");
    assert.match(show, /^User=emo$/m);
    assert.match(show, /^MemoryMax=25769803776$/m, "MemoryMax=24G");
    assert.match(show, /^MemorySwapMax=0$/m);
    assert.match(show, /^OOMPolicy=continue$/m);
    assert.match(show, /^EnvironmentFiles=\/etc\/t3-serve\/emo\.env /m);
    assert.match(first.stdout, /changes=[1-9]/);
    const again = await tryRun(webApplyScript(plan.web));
    assert.match(again.stdout, /changes=0\b/, `a second run changes nothing: ${again.stdout}`);

    // The setup-token mode (README "Claude logins"): T3's unit reads the user's token through
    // the shipped snippet, as the user; a user without the file gets none.
    await sh(`cat > ${CLAUDE_TOKEN_ENV}`, fs.readFileSync(path.join(ROOT, "config/claude-token.sh"), "utf8"));
    const token = `sk-ant-oat01-${crypto.randomBytes(40).toString("base64url")}`;
    await sh(`runuser -u emo -- sh -c 'umask 077; cat > ~/${CLAUDE_TOKEN_FILE}'`, `${token}\n`);
    await sh("systemctl restart t3-serve@emo.service t3-serve@nadia.service");
    const emo = await waitFor("emo's T3 again", () => t3At(ports.emo));
    const nadia = await waitFor("nadia's T3 again", () => t3At(ports.nadia));
    assert.equal((emo as { claudeToken?: string | null }).claudeToken, crypto.createHash("sha256").update(token).digest("hex").slice(0, 16));
    assert.equal((nadia as { claudeToken?: string | null }).claudeToken, null);
  });

  test("suspend emo, offboard nadia, T3 off for viktor: out of every file and unit disabled in the same run; ports stay theirs", async () => {
    const before = await ledger();
    const plan = planned((us) => {
      set("emo", { state: "suspended" })(us);
      set("nadia", { state: "offboarded" })(us);
      set("viktor", { overrides: { t3: false } })(us);
    });
    assert.deepEqual(
      plan.web.terminal.map((i) => i.user),
      ["viktor"],
    );
    const r = await tryRun(webApplyScript(plan.web));
    assert.equal(r.code, 0, r.stderr);
    await assertFiles(plan, "after the cut");
    for (const u of ["emo", "nadia", "viktor"]) {
      assert.equal(await unitState(u), "disabled\ninactive", `t3-serve@${u} is stopped and disabled`);
      assert.equal(await t3At(before[u]), undefined, `nothing answers on ${u}'s port`);
    }
    for (const f of [TTYD_USER_MAP, TTYD_SUDOERS, T3_DISPATCH]) assert.doesNotMatch(await cat(f), /\b(emo|nadia)\b/, `${f} names neither emo nor nadia`);
    assert.deepEqual(await ledger(), before, "the ledger keeps every port and its owner");
    // The account verb also stops a suspended user's T3 (every *@user.service).
    await up(planned(set("emo", { state: "active" })));
    assert.equal(await unitState("emo"), "enabled\nactive");
    await up(planned(set("emo", { state: "suspended" })));
    assert.equal(await unitState("emo"), "disabled\ninactive");
  });

  test("sticky ports: re-added users get their own port back; a new user gets one nobody ever had", async () => {
    const before = await ledger();
    const back = planned();
    await up(back);
    await assertFiles(back, "everyone back");
    assert.deepEqual(await ledger(), before, "emo, nadia and viktor have their ports back");
    const zed = planned((us) => {
      us.push({ ...us.find((u) => u.name === "emo")!, name: "zed", uid: 2010, email: "zed@example.com", forgejo: "zed", sshKeys: [], sso: "zed.k" });
      set("emo", { state: "suspended" })(us);
    });
    await up(zed);
    const ports = await ledger();
    assert.equal(ports.zed, 3776, "the lowest port never handed out (emo's 3773 is not reused while emo is away)");
    assert.equal(ports.emo, before.emo);
    await assertFiles(zed, "zed onboarded while emo is suspended");
    assert.match(await cat(T3_DISPATCH), /"zed\.k":\{"os_user":"zed","port":3776\}/);
    assert.deepEqual((await waitFor("zed's T3", () => t3At(3776)))?.user, "zed");
  });

  test("a hand edit is put back: at once by workstations-web.path, and by the next run", async () => {
    const plan = planned((us) => {
      us.push({ ...us.find((u) => u.name === "emo")!, name: "zed", uid: 2010, email: "zed@example.com", forgejo: "zed", sshKeys: [], sso: "zed.k" });
    });
    await up(plan);
    await assertFiles(plan, "before the edits");
    assert.equal(await sh("systemctl is-enabled workstations-web.path; systemctl is-active workstations-web.path"), "enabled\nactive");
    const edits = [
      `echo 'mallory=viktor' >> ${TTYD_USER_MAP}`,
      `echo 'emo' >> ${TTYD_ADMINS}`,
      `chmod 0640 ${TTYD_SUDOERS} && echo 'ttyd ALL=(ALL) NOPASSWD: ALL' >> ${TTYD_SUDOERS} && chmod 0440 ${TTYD_SUDOERS}`,
      `echo 'T3_PORT=3773' > ${T3_DIR}/zed.env`,
      `rm -f ${T3_DISPATCH}`,
      `echo 'T3_PORT=4000' > ${T3_DIR}/mallory.env`,
    ];
    for (const e of edits) {
      await sh(e);
      await waitFor(
        `the put-back of: ${e}`,
        async () => {
          try {
            await assertFiles(plan, e);
            return true;
          } catch {
            return false;
          }
        },
        30_000,
        500,
      );
    }
    // The next run puts it back too (the host's watch stopped: only the run is left).
    await sh("systemctl stop workstations-web.path");
    await sh(`echo 'mallory=viktor' >> ${TTYD_USER_MAP} && rm -f ${T3_DIR}/emo.env`);
    const r = await tryRun(webApplyScript(plan.web));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /changed: \/etc\/ttyd-user-map/);
    await assertFiles(plan, "after the next run");
    assert.equal(await sh("systemctl is-active workstations-web.path"), "active", "the run starts the watch again");
  });

  test("a sudoers file visudo refuses is never installed; the old one stays", async () => {
    const plan = planned();
    await up(plan);
    const good = await cat(TTYD_SUDOERS);
    const bad = { ...webApplyParams(plan.web), SUDOERS_B64: Buffer.from("ttyd ALL=(emo) NOPASSWD: tmux\n").toString("base64") };
    const r = await tryRun(libCommand("web-apply", bad));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /does not pass visudo -c .*it was not installed/);
    assert.equal(await cat(TTYD_SUDOERS), good);
    assert.equal((await tryRun("visudo -c")).code, 0);
    await up(plan);
  });
});
