/**
 * The web terminal under the real engine (issue 22): the real Pulumi CLI runs the whole
 * program (workstations:webTerminal on) against the trixie VM test host (ttyd 1.7.7 is only
 * there), and a real browser (chromium) reaches emo's session through a real nginx running
 * docs/nginx-web-terminal.conf. A memory hog typed into one pane of that session is killed
 * alone (the pane cap of issue 23: the other pane, the server and the connection live). Then emo is suspended by a roster edit and `up`: in that one
 * run the web files are regenerated, emo's identity is gone from every file, the open
 * connection ends, and a new one is refused. A second `up` changes nothing.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { T3_DISPATCH, TTYD_ADMINS, TTYD_SUDOERS, TTYD_USER_MAP } from "../../components/hostContract";
import { Browser, type Page } from "../../dev/browser";
import { changeCollector, E2E, PROJECT_DIR, setupE2E, urnName } from "../../dev/e2e";
import { cacheDir } from "../../dev/testhost/testhost";
import { waitFor } from "../../dev/wait";
import { assertStaysClosed, WebTerminalProxy } from "../../dev/webterm";

// ttyd is only on the VM test host (Debian trixie, ttyd from sid); the harness makes its host with this.
process.env.WORKSTATIONS_TESTHOST = "vm";
const ARTIFACTS = path.join(process.env.WORKSTATIONS_ARTIFACTS ?? path.join(cacheDir(), "artifacts"), "web-terminal");
type User = { name: string; state?: string } & Record<string, unknown>;
const roster = YAML.parse(fs.readFileSync(path.join(PROJECT_DIR, "roster.example.yaml"), "utf8")) as { users: User[] };

let e: E2E;
const proxy = new WebTerminalProxy();
let browser: Browser;

async function open(login: string, session: string): Promise<Page> {
  const p = await browser.newPage();
  await p.setCookie({ name: "test_login", value: login, url: proxy.url });
  await p.goto(`${proxy.url}?arg=${session}`);
  await waitFor("the terminal on the page", () => p.eval<boolean>("!!document.querySelector('.xterm-helper-textarea')"), 30_000);
  await p.eval("document.querySelector('.xterm-helper-textarea').focus()");
  return p;
}
const pane = (user: string, session: string) => e.sh(`runuser -u ${user} -- /usr/bin/tmux capture-pane -p -t ${session}: 2>/dev/null || true`);

before(
  async () => {
    e = await setupE2E("webterm", roster, { forgejo: false, kube: false });
    await e.stack.setConfig("workstations:webTerminal", { value: "true" });
    await e.up();
    await proxy.start(e.host);
    browser = await Browser.launch();
  },
  { timeout: 60 * 60_000 },
);
after(async () => {
  await browser?.close();
  await proxy.stop();
  await e?.stop();
});

test("systemd-analyze verify accepts the web terminal's unit as the program installed it (ttyd 1.7.7, systemd 257)", async () => {
  assert.equal(await e.sh("systemctl is-active ws-ttyd.service"), "active");
  const r = await e.sh("systemd-analyze verify --man=no /etc/systemd/system/ws-ttyd.service 2>&1; echo rc=$?");
  const lines = r.split("\n").filter((l) => l.trim() && !/^rc=/.test(l));
  assert.match(r, /rc=0\s*$/, r);
  assert.deepEqual(lines, [], "no warnings");
});

test("a memory hog in a pane of emo's web-terminal session is killed alone: the pane cap, not the session", { timeout: 30 * 60_000 }, async () => {
  const p = await open("emo", "hog");
  await waitFor("emo's prompt", async () => /\$\s*$/m.test(await pane("emo", "hog")), 60_000);
  const tmux = (args: string) => e.sh(`runuser -u emo -- /usr/bin/tmux ${args}`);
  await tmux("split-window -d -t hog:");
  const panes = (await tmux("list-panes -t hog: -F '#{pane_id} #{pane_pid}'")).split("\n").map((l) => l.split(" "));
  assert.equal(panes.length, 2);
  const uid = await e.sh("id -u emo");
  // the web terminal's attach started emo's server under her own manager: each pane in its own scope of her slice
  for (const [, pid] of panes)
    assert.match(await e.sh(`cat /proc/${pid}/cgroup`), new RegExp(`/user-${uid}\\.slice/user@${uid}\\.service/.*tmux-spawn-[^/]+\\.scope$`), `pane ${pid}`);
  const server = await tmux("display-message -p -t hog: '#{pid}'");
  await tmux(`send-keys -t ${panes[1][0]} 'sleep 100001' Enter`);
  await e.sh("dmesg -C");
  // typed in the browser, in the pane it shows (the first)
  await p.type("head -c 4000M /dev/zero | tail\r");
  await waitFor("the OOM kill", async () => /Killed process \d+ \(tail\)/.test(await e.sh("dmesg")), 300_000);
  const kill = (await e.sh("dmesg")).split("\n").find((l) => /Killed process \d+ \(tail\)/.test(l))!;
  const cap = await e.sh(
    `find /sys/fs/cgroup/user.slice/user-${uid}.slice -name 'tmux-spawn-*.scope' -exec cat {}/memory.max ';' 2>/dev/null | sort -u | head -3 || true`,
  );
  console.log(`# web-terminal hog: ${kill.trim()}; pane scopes' memory.max ${cap.replace(/\n/g, " ")}`);
  assert.match(kill, new RegExp(`UID:${uid}`));
  await new Promise((res) => setTimeout(res, 3000));
  assert.equal(await e.sh(`kill -0 ${server} && echo alive`), "alive", "emo's tmux server lives");
  assert.equal((await tmux("list-panes -t hog: -F '#{pane_id}'")).split("\n").length, 2, "both panes live");
  assert.match(await e.sh("pgrep -u emo -f 'sleep 100001' || true"), /\d+/, "the other pane's process lives");
  assert.equal(p.openSockets().length, 1, "the browser's connection stays open");
  await p.type("echo alive-$((6*7))\r");
  await waitFor("the pane answers", async () => /^alive-42$/m.test(await pane("emo", "hog")), 30_000);
  await p.screenshot(path.join(ARTIFACTS, "e2e-0-emo-hog-killed.png"));
  await tmux("kill-session -t hog");
});

test("real engine: emo's session in the browser; suspending emo by roster edit and up ends it and refuses the next", { timeout: 60 * 60_000 }, async () => {
  const p = await open("emo", "work");
  await waitFor("emo's prompt", async () => /\$\s*$/m.test(await pane("emo", "work")), 60_000);
  await p.type("whoami\r");
  await waitFor("whoami in emo's pane", async () => /^emo$/m.test(await pane("emo", "work")), 30_000);
  await p.screenshot(path.join(ARTIFACTS, "e2e-1-emo.png"));
  assert.equal(p.openSockets().length, 1);

  for (const u of roster.users) if (u.name === "emo") u.state = "suspended";
  e.writeRoster(roster);
  const cutAt = await e.sh("date '+%Y-%m-%d %H:%M:%S'");
  const c = changeCollector();
  await e.up({ onEvent: c.onEvent });
  const changed = c.changed.map((x) => `${x.op} ${urnName(x.urn)}`);
  assert.ok(changed.includes("update web-files"), `the web files are regenerated in the same up: ${changed.join(", ")}`);
  assert.ok(changed.includes("update emo-account"), "and emo's account is cut in it");
  for (const f of [TTYD_USER_MAP, TTYD_ADMINS, TTYD_SUDOERS, T3_DISPATCH]) assert.doesNotMatch(await e.sh(`cat ${f}`), /\bemo\b/, `${f} no longer names emo`);
  await waitFor("the open connection to end", () => p.openSockets().length === 0, 60_000);
  await assertStaysClosed(p, "emo", () => e.sh(`journalctl -q --no-pager --since '${cutAt}' -t ws-term-attach -u ws-ttyd -o cat || true`));
  const left = await e.sh("pgrep -u emo || true");
  assert.equal(
    left,
    "",
    `nothing of emo's runs:\n${left && (await e.sh("ps -o pid,ppid,lstart,args -u emo; journalctl -q --no-pager -n 30 -t ws-term-attach -t sudo -o short-precise || true"))}`,
  );
  const since = await e.sh("date '+%Y-%m-%d %H:%M:%S'");
  const again = await open("emo", "work");
  await waitFor(
    "the refusal of suspended emo",
    async () => /refused: identity emo is not in/.test(await e.sh(`journalctl -q --no-pager --since '${since}' -t ws-term-attach -o cat || true`)),
    60_000,
  );
  await again.screenshot(path.join(ARTIFACTS, "e2e-2-emo-suspended-refused.png"));
  assert.equal(await e.sh("pgrep -u emo || true"), "", "no shell for emo");
  await e.stack.up({ color: "never", expectNoChanges: true });
});
