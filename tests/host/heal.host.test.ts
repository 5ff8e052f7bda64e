/**
 * Drift between deploys (issue 21 item 7; README "Drift") on the systemd test host, the
 * program applied by the mini-engine as `pulumi up` applies it: every step the deploy ran
 * through the host library leaves its record; `workstations-heal --check` reports each kind of
 * drift (a user's timer and a host unit disabled, a sudoers drop-in deleted, a key file edited by
 * hand and another with a key planted, the mirror corrupted, the managed settings edited) and
 * changes nothing; one run of the timer's service puts every one back, logs it and posts it
 * once to Slack; a second run has nothing to do. It never does what a deploy would not: a
 * suspended user's account step has no record, and an offboarded user's records are gone.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { DEPLOYED_DIR, KEYS_DIR, MANAGED_SETTINGS, MIRROR_FILE, SUDOERS_DIR } from "../../components/hostContract";
import { capture, MiniEngine } from "../../dev/engine";
import { FakeSlack, startFakeSlack } from "../../dev/fakes/slack";
import { exampleRosterWith } from "../../dev/mocks";
import { ed25519Key } from "../../dev/sshkeys";
import { runToolAgainst } from "../../dev/tools";
import { boot, createHost, destroyHost, run, type TestHost } from "../../dev/testhost/testhost";

const roster = exampleRosterWith;

describe("workstations-heal on the systemd host", { timeout: 30 * 60_000 }, () => {
  let h: TestHost;
  let engine: MiniEngine;
  let slack: FakeSlack;
  const tryRun = (cmd: string) => run(h, cmd, { check: false });
  const sh = async (cmd: string) => (await run(h, cmd)).stdout.trim();
  const up = async (states: Record<string, string> = {}) => engine.up(await capture({ roster: roster(states), config: { slackWebhook: slack.webhookUrl } }));
  const records = async () => (await sh(`ls ${DEPLOYED_DIR}`)).split("\n").filter(Boolean).sort();
  /** `npm run drift` from here, over ssh with the host's key (as CI's preview runs it, with --ci). */
  const drift = (...extra: string[]) => runToolAgainst(h, "drift", extra);

  const sums = (files: string[]) => sh(`sha256sum ${files.join(" ")}; stat -c '%n %a %U:%G' ${files.join(" ")}`);

  before(async () => {
    slack = await startFakeSlack();
    h = await createHost("heal");
    await boot(h);
    engine = new MiniEngine((command, stdin) => run(h, command, { stdin, check: false }));
    await up();
  });
  after(async () => {
    if (h) await destroyHost(h);
    await slack?.stop();
  });

  test("after a deploy: a record per converging step (none for suspended sam's account), no drift, the hourly timer on", async () => {
    const r = await records();
    for (const k of [
      "account-apply@viktor",
      "account-apply@emo",
      "units-user@emo",
      "home-apply@emo",
      "limits-apply@emo",
      "host-files-apply@host",
      "units@host",
    ])
      assert.ok(r.includes(k), `${k} in ${r.join(" ")}`);
    assert.ok(!r.includes("account-apply@sam"), "no account step of a suspended user: the heal never repeats a cut");
    assert.equal(await sh(`stat -c '%a %U' ${DEPLOYED_DIR} ${DEPLOYED_DIR}/account-apply@viktor`), "700 root\n600 root");
    const c = await tryRun("workstations-heal --check");
    assert.equal(c.code, 0, c.stdout + c.stderr);
    assert.match(c.stdout, /^no drift \(\d+ records\)$/m);
    assert.equal(await sh("systemctl is-enabled workstations-heal.timer; systemctl is-active workstations-heal.timer"), "enabled\nactive");
    assert.match(await sh("systemctl show -p TimersCalendar --value workstations-heal.timer"), /OnCalendar=\*-\*-\* \*:00:00/);
  });

  test("each kind of drift is reported by --check, put back by one run of the timer's service and posted once; then nothing to do", async () => {
    const emoTimer = (await sh(`grep -P '^unit\\t' ${DEPLOYED_DIR}/units-user@emo | cut -f2 | head -n 1`)).trim();
    assert.match(emoTimer, /@emo\.timer$/, "emo has a timer to disable");
    const files = [`${SUDOERS_DIR}/ws-viktor`, `${KEYS_DIR}/emo`, `${KEYS_DIR}/viktor`, MIRROR_FILE, MANAGED_SETTINGS];
    const before = await sums(files);
    // the drift, by hand
    await sh(`systemctl disable --now ${emoTimer} tmux-persist-save.timer 2>/dev/null`);
    await sh(`rm ${SUDOERS_DIR}/ws-viktor`);
    await sh(`sed -i 's/ssh-ed25519 /ssh-ed25519  /' ${KEYS_DIR}/emo`);
    await sh(`echo '${ed25519Key("planted")}' >> ${KEYS_DIR}/viktor`);
    await sh(`echo 'corrupted' >> ${MIRROR_FILE}`);
    await sh(`sed -i 's/"claudeMd"/"claudeMD"/' ${MANAGED_SETTINGS}`);
    const c = await tryRun("workstations-heal --check");
    assert.equal(c.code, 1, c.stdout + c.stderr);
    for (const want of [
      new RegExp(`^drift: units-user@emo: ${emoTimer.replace(/[.@]/g, "\\$&")}: disabled, not enabled$`, "m"),
      /^drift: units@host: tmux-persist-save\.timer: disabled, not enabled$/m,
      /^drift: account-apply@viktor: \/etc\/sudoers\.d\/ws-viktor: missing$/m,
      /^drift: account-apply@emo: \/etc\/ssh\/authorized_keys\.d\/emo: edited$/m,
      /^drift: account-apply@viktor: \/etc\/ssh\/authorized_keys\.d\/viktor: edited$/m,
      /^drift: host-files-apply@host: \/usr\/local\/share\/workstations\/agents-mirror\.md: edited$/m,
      /^drift: host-files-apply@host: \/etc\/claude-code\/managed-settings\.json: edited$/m,
    ])
      assert.match(c.stdout, want);
    assert.equal(await tryRun(`test -e ${SUDOERS_DIR}/ws-viktor`).then((r) => r.code), 1, "--check changed nothing");
    // the report CI's preview prints, read over ssh
    const d = drift();
    assert.equal(d.status, 1, d.stdout + d.stderr);
    assert.match(d.stdout, /^drift on 127\.0\.0\.1 since the last deploy/m);
    assert.match(d.stdout, /^ {2}drift: account-apply@viktor: \/etc\/sudoers\.d\/ws-viktor: missing$/m);
    assert.equal(drift("--ci").status, 0, "never fails the preview");

    const since = await sh("date '+%Y-%m-%d %H:%M:%S'");
    const posted = slack.delivered.length;
    const r = await tryRun("systemctl start workstations-heal.service");
    assert.equal(r.code, 0, r.stderr);
    const log = await sh(`journalctl -q --no-pager -u workstations-heal.service --since '${since}' -o cat`);
    for (const want of [
      /^healed: account-apply@viktor: \/etc\/sudoers\.d\/ws-viktor$/m,
      /^healed: units-user@emo: enabled /m,
      /^healed: units@host: enabled tmux-persist-save\.timer$/m,
      /^healed: host-files-apply@host: \/etc\/claude-code\/managed-settings\.json$/m,
    ])
      assert.match(log, want);
    assert.equal(await sums(files), before, "every file is back, byte for byte, with its mode and owner");
    assert.equal(await sh(`systemctl is-enabled ${emoTimer} tmux-persist-save.timer`), "enabled\nenabled");
    assert.equal(await sh(`systemctl is-active ${emoTimer} tmux-persist-save.timer`), "active\nactive");
    const posts = slack.delivered.slice(posted);
    assert.equal(posts.length, 1, "one post for the run");
    assert.match(posts[0].text, /workstations-heal on .* put back what drifted/);
    assert.match(posts[0].text, /ws-viktor/);

    const again = await tryRun("workstations-heal --check");
    assert.equal(again.code, 0, again.stdout);
    const d2 = drift();
    assert.equal(d2.status, 0, d2.stdout + d2.stderr);
    assert.match(d2.stdout, /^ {2}no drift \(\d+ records\)$/m);
    const since2 = await sh("date '+%Y-%m-%d %H:%M:%S'");
    await sh("systemctl start workstations-heal.service");
    assert.doesNotMatch(
      await sh(`journalctl -q --no-pager -u workstations-heal.service --since '${since2}' -o cat`),
      /^healed:/m,
      "a second run heals nothing",
    );
    assert.equal(slack.delivered.length, posted + 1, "and posts nothing");
  });

  test("a deploy's own changes are no drift; suspending emo drops her account record, offboarding every record of hers", async () => {
    await up({ emo: "suspended" });
    assert.ok(!(await records()).includes("account-apply@emo"), "suspended: no account step to repeat");
    assert.equal((await tryRun("workstations-heal --check")).code, 0, "the suspension is no drift");
    await up({ emo: "offboarded" });
    assert.deepEqual(
      (await records()).filter((k) => k.endsWith("@emo")),
      [],
      "offboarded: nothing of emo's is applied again",
    );
    const c = await tryRun("workstations-heal --check");
    assert.equal(c.code, 0, c.stdout);
  });
});
