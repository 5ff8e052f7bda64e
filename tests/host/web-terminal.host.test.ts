/**
 * The web terminal in a real browser (issue 22 item 3): Debian's chromium, headless, through a
 * real nginx running docs/nginx-web-terminal.conf (it sets X-authentik-username from a test
 * login and overwrites any the client sends), to the real ttyd 1.7.7 (Debian's, from sid) on
 * the trixie VM test host (bookworm has no ttyd), with the program applied by the mini-engine
 * (dev/engine.ts: the program's own commands, in the engine's order) and
 * workstations:webTerminal on. Screenshots go to $WORKSTATIONS_ARTIFACTS (default
 * ~/.cache/workstations/artifacts)/web-terminal/.
 *
 *  - As emo: the page shows emo's tmux session, `whoami` typed into it prints emo, and the
 *    session (a shell variable set in it) is there after the browser reconnects and after the
 *    terminal service restarts; its tmux server lives in user@2001.service.
 *  - Spoofing: a forged header through nginx reaches nobody else's shell; without a login it
 *    gets no shell; another local account cannot open the ttyd socket; an identity not in the
 *    map gets no shell; a session name with shell metacharacters gets no shell.
 *  - A hook of emo's own tmux server that kills it right after `tmux list-sessions` gets no
 *    tmux server of emo's into the terminal's service (its clients run with -N).
 *  - Suspending emo by a roster edit and an `up`: emo's identity is gone from every file, the
 *    open connection ends, a new one is refused.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as path from "node:path";
import { TERMINAL_SOCKET, T3_DISPATCH, TTYD_SUDOERS, TTYD_USER_MAP } from "../../components/hostContract";
import { Browser, type Page } from "../../dev/browser";
import { capture, MiniEngine } from "../../dev/engine";
import { exampleRosterWith } from "../../dev/mocks";
import { boot, cacheDir, createHost, destroyHost, run, type TestHost } from "../../dev/testhost/testhost";
import { sleep, waitFor } from "../../dev/wait";
import { assertStaysClosed, WebTerminalProxy } from "../../dev/webterm";

const ARTIFACTS = path.join(process.env.WORKSTATIONS_ARTIFACTS ?? path.join(cacheDir(), "artifacts"), "web-terminal");
const EMO_UID = 2001;

/** One GET with exactly these headers (fetch refuses Connection and Upgrade): status and Location. */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; location: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, location: String(res.headers.location ?? "") });
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 101, location: "" });
    });
    req.on("error", reject);
  });
}

const roster = exampleRosterWith;

describe("the web terminal in a real browser (trixie VM: ttyd 1.7.7, nginx, chromium)", { timeout: 45 * 60_000 }, () => {
  let h: TestHost;
  let engine: MiniEngine;
  const proxy = new WebTerminalProxy();
  let browser: Browser;
  const tryRun = (cmd: string) => run(h, cmd, { check: false });
  const sh = async (cmd: string) => (await run(h, cmd)).stdout.trim();
  const up = async (states: Record<string, string> = {}) => engine.up(await capture({ roster: roster(states), config: { webTerminal: "true" } }));
  /** A tmux command as the user (their own server). */
  const tmuxAs = (user: string, args: string) => tryRun(`runuser -u ${user} -- /usr/bin/tmux ${args}`);
  const pane = async (user: string, session: string) => (await tmuxAs(user, `capture-pane -p -t ${session}:`)).stdout;
  /** What ttyd's page shows, when its terminal object is reachable (else ""). */
  const screen = (p: Page) =>
    p.eval<string>(
      `(() => { const t = window.term; if (!t || !t.buffer) return document.querySelector('.xterm-rows')?.innerText ?? ""; const b = t.buffer.active; return Array.from({ length: b.length }, (_, i) => b.getLine(i)?.translateToString(true) ?? "").join("\\n"); })()`,
    );
  /** A new tab logged in as `login` (the outpost's cookie), at session `arg` (raw query value). */
  const open = async (login: string | undefined, arg: string, headers: Record<string, string> = {}) => {
    const p = await browser.newPage();
    if (login) await p.setCookie({ name: "test_login", value: login, url: proxy.url });
    if (Object.keys(headers).length) await p.setExtraHeaders(headers);
    await p.goto(`${proxy.url}?arg=${arg}`);
    await focus(p);
    return p;
  };
  /** Keystrokes go to xterm's input: its helper textarea, once the terminal is on the page. */
  const focus = async (p: Page) => {
    await waitFor("the terminal on the page", () => p.eval<boolean>("!!document.querySelector('.xterm-helper-textarea')"), 30_000);
    await p.eval("document.querySelector('.xterm-helper-textarea').focus()");
  };
  const journal = async (since: string) => sh(`journalctl -q --no-pager --since ${JSON.stringify(since)} -t ws-term-attach -t sudo -o cat || true`);
  const hostNow = () => sh("date '+%Y-%m-%d %H:%M:%S'");

  before(async () => {
    h = await createHost("webterm", { kind: "vm" });
    await boot(h);
    engine = new MiniEngine((command, stdin) => run(h, command, { stdin, check: false }));
    await up();
    assert.equal(await sh("systemctl is-active ws-ttyd.service"), "active");
    await proxy.start(h);
    browser = await Browser.launch();
  });
  after(async () => {
    await browser?.close();
    await proxy.stop();
    if (h) await destroyHost(h);
  });

  test("as emo: emo's tmux session, whoami prints emo, kept across a reconnect and a restart of the terminal service", async () => {
    const p = await open("emo", "work");
    await waitFor("emo's session 'work'", async () => (await tmuxAs("emo", "has-session -t =work")).code === 0, 60_000);
    const server = (await tmuxAs("emo", "display-message -p -t work: '#{pid}'")).stdout.trim();
    const cgroup = await sh(`cat /proc/${server}/cgroup`);
    assert.match(cgroup, new RegExp(`/user\\.slice/user-${EMO_UID}\\.slice/user@${EMO_UID}\\.service/`), "the tmux server is in emo's own manager");
    assert.doesNotMatch(cgroup, /ws-ttyd/, "not in the terminal's service");
    await waitFor("emo's prompt", async () => /\$\s*$/m.test(await pane("emo", "work")), 30_000);
    await p.type("clear; whoami\r");
    await waitFor("whoami's answer in emo's pane", async () => /^emo$/m.test(await pane("emo", "work")), 30_000);
    const shown = await screen(p);
    if (shown) assert.match(shown, /^emo$/m, "the page shows it");
    await p.screenshot(path.join(ARTIFACTS, "1-emo-whoami.png"));
    await p.type("export WS_MARK=kept-$((6*7)); echo set-$WS_MARK\r");
    await waitFor("the mark", async () => /^set-kept-42$/m.test(await pane("emo", "work")));

    // The browser reconnects: a new page load, the same session.
    await p.goto(`${proxy.url}?arg=work`);
    await focus(p);
    await sleep(1500);
    await p.type("clear; echo again-$WS_MARK\r");
    await waitFor("the mark after a reconnect", async () => /^again-kept-42$/m.test(await pane("emo", "work")), 30_000);

    // The terminal service restarts: connections end, the session stays.
    await sh("systemctl restart ws-ttyd.service");
    assert.equal((await tmuxAs("emo", "has-session -t =work")).code, 0, "the session outlives the terminal service");
    assert.equal((await tmuxAs("emo", "display-message -p -t work: '#{pid}'")).stdout.trim(), server, "the same tmux server");
    // The page does not reconnect by itself (disableReconnect); Enter on it does.
    await waitFor("the connection to end with the service", () => p.openSockets().length === 0, 30_000).catch((e: Error) => {
      throw new Error(`${e.message}: ${p.openSockets().length} open of ${p.sockets.size}\n${p.console.slice(-6).join("\n")}`);
    });
    const made = p.sockets.size;
    await sleep(4000);
    assert.equal(p.sockets.size, made, "no reconnect on its own");
    await focus(p);
    await p.type("\r");
    await waitFor("the reconnect on Enter", () => p.openSockets().length === 1, 30_000);
    await sleep(1500);
    await p.type("clear; echo restarted-$WS_MARK\r");
    await waitFor("the mark after the service restart", async () => /^restarted-kept-42$/m.test(await pane("emo", "work")), 30_000);
    await p.screenshot(path.join(ARTIFACTS, "2-emo-after-restart.png"));
    await p.call("Page.close");
  });

  test("spoofing: a forged header, no login, another local account, an unmapped identity, shell metacharacters", async () => {
    const since = await hostNow();
    // A forged header through nginx, logged in as emo: nginx replaces it with emo.
    const forged = await open("emo", "spoof", { "X-authentik-username": "viktor" });
    await waitFor("the 'spoof' session", async () => (await tmuxAs("emo", "has-session -t =spoof")).code === 0, 60_000);
    await forged.type("whoami\r");
    await waitFor("whoami in the spoof session", async () => /^emo$/m.test(await pane("emo", "spoof")), 30_000);
    assert.notEqual((await tmuxAs("viktor", "has-session -t =spoof")).code, 0, "viktor's server has no such session");
    await forged.call("Page.close");
    // No login, a forged header: nginx sends the browser to the sign-in, never to ttyd.
    const upgrade = { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" };
    for (const headers of [{}, upgrade]) {
      const r = await rawGet(`${proxy.url}ws?arg=x`, { "X-authentik-username": "viktor", ...headers });
      assert.equal(r.status, 302, "no login: a redirect to the sign-in");
      assert.match(r.location, /\/outpost\.goauthentik\.io\/start/);
    }
    // Another local account cannot open the socket; the proxy's account can, and ttyd wants the header.
    assert.equal(await sh(`stat -c '%a %U:%G' $(dirname ${TERMINAL_SOCKET}) ${TERMINAL_SOCKET}`), "750 ttyd:www-data\n660 ttyd:www-data");
    const connectAs = (user: string) =>
      sh(
        `runuser -u ${user} -- node -e "require('net').connect('${TERMINAL_SOCKET}').on('error', (e) => { console.log(e.code); process.exit(0); }).on('connect', () => { console.log('connected'); process.exit(0); })"`,
      );
    for (const user of ["nadia", "viktor"]) assert.equal(await connectAs(user), "EACCES", `${user} cannot open the socket`);
    assert.equal(await connectAs("www-data"), "connected", "the proxy's account can");
    assert.equal(await sh(`runuser -u www-data -- curl -s -o /dev/null -w '%{http_code}' --unix-socket ${TERMINAL_SOCKET} http://localhost/`), "407");
    // An identity not in the map, and session names that are not names: refused by the attach program.
    const cases: Array<[string, string, RegExp]> = [
      ["mallory", "work", /refused: identity mallory is not in \/etc\/ttyd-user-map/],
      ["emo", encodeURIComponent("x;id"), /refused: session name x\\;id for emo/],
      ["emo", encodeURIComponent("$(id)"), /refused: session name \\\$\\\(id\\\) for emo/],
      ["emo", "a&arg=b", /refused: 2 arguments for emo/],
    ];
    for (const [login, arg, re] of cases) {
      const p = await open(login, arg);
      await waitFor(`the refusal of ${login} ?arg=${arg}`, async () => re.test(await journal(since)), 30_000);
      if (login === "mallory") await p.screenshot(path.join(ARTIFACTS, "3-mallory-refused.png"));
      await p.call("Page.close");
    }
    const log = await journal(since);
    assert.doesNotMatch(log, /USER=viktor/, "nothing ran as viktor");
    assert.doesNotMatch(log, /COMMAND=.*(x;id|\$\(id\))/, "no metacharacter reached sudo");
    const sessions = (await tmuxAs("emo", "list-sessions -F '#{session_name}'")).stdout.split("\n").filter(Boolean).sort();
    assert.deepEqual(sessions, ["spoof", "work"], "no other session was made");
  });

  // ws-term-session's tmux clients run in ws-ttyd.service. A client whose server has just gone
  // starts a new one unless told not to (-N), and that server would be in the terminal's service,
  // outside emo's slice and its caps. emo can make that moment: a hook of emo's own server that
  // kills it right after the `tmux list-sessions` the attach runs before `new-session -d`.
  test("a hook of emo's that kills emo's server after list-sessions gets no tmux server into the terminal's service", async () => {
    const since = await hostNow();
    await tmuxAs("emo", "new-session -d -s decoy"); // a server of emo's, whichever tests ran before
    assert.equal((await tmuxAs("emo", "set-hook -g after-list-sessions kill-server")).code, 0);
    const p = await open("emo", "escape");
    await waitFor("emo's session 'escape'", async () => (await tmuxAs("emo", "has-session -t =escape")).code === 0, 60_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await journal(since)}\n${(await tryRun(`ps -o pid,user,args -u ${EMO_UID}`)).stdout}`);
    });
    const server = (await tmuxAs("emo", "display-message -p -t escape: '#{pid}'")).stdout.trim();
    const cgroup = await sh(`cat /proc/${server}/cgroup`);
    assert.match(cgroup, new RegExp(`/user@${EMO_UID}\\.service/`), "the new tmux server is in emo's own manager");
    assert.doesNotMatch(cgroup, /ws-ttyd/, "not in the terminal's service");
    // what of emo's runs in the terminal's service: the sudo'd attach and its tmux client only
    const inTerminal = await sh(
      `for p in $(cat /sys/fs/cgroup/system.slice/ws-ttyd.service/cgroup.procs); do ps -o uid=,comm=,args= -p $p; done | awk '$1 == ${EMO_UID}'`,
    );
    assert.doesNotMatch(inTerminal, /tmux: server|tmux new-session -d/, inTerminal);
    assert.match(inTerminal, /tmux -N new-session -A -s escape/, inTerminal);
    await p.goto("about:blank");
    await tmuxAs("emo", "set-hook -gu after-list-sessions");
  });

  test("a connection between a suspension's cut and the new map (emo mapped, but suspended in users.d) is refused before sudo", async () => {
    const entry = "/etc/workstations/users.d/emo.json";
    const active = await sh(`cat ${entry}`);
    assert.match(active, /"state":"active"/);
    // the cut's first step alone: the account's entry says suspended; the map still names emo
    await sh(`sed -i 's/"state":"active"/"state":"suspended"/' ${entry}`);
    assert.match(await sh(`cat ${TTYD_USER_MAP}`), /\bemo\b/);
    try {
      const since = await hostNow();
      const p = await open("emo", "late");
      await waitFor("the refusal", async () => /refused: identity emo: emo is not active/.test(await journal(since)), 30_000);
      await p.goto("about:blank"); // no reconnect once the entry is restored
      const log = await journal(since);
      assert.doesNotMatch(log, /USER=emo/, "sudo never ran anything as emo");
      assert.doesNotMatch((await tmuxAs("emo", "list-sessions -F '#{session_name}'")).stdout, /^late$/m, "no session was made");
    } finally {
      await sh(`printf '%s\\n' '${active}' > ${entry}`);
    }
    assert.equal(await sh(`cat ${entry}`), active);
  });

  test("suspend emo by roster edit and up: gone from every file, the open connection ends, a new one is refused", async () => {
    const p = await open("emo", "work");
    await waitFor(
      "emo's open connection",
      async () => p.openSockets().length === 1 && (await tryRun(`pgrep -u ${EMO_UID} -f 'tmux -N new-session -A'`)).code === 0,
      60_000,
    );
    const cutAt = await hostNow();
    const actions = await up({ emo: "suspended" });
    assert.ok(
      actions.some((a) => a.name === "web-files"),
      "the web files were regenerated in the same up",
    );
    for (const f of [TTYD_USER_MAP, TTYD_SUDOERS, T3_DISPATCH]) assert.doesNotMatch(await sh(`cat ${f}`), /\bemo\b/, `${f} no longer names emo`);
    // (on a timeout the error shows what of emo's and the terminal's is still running)
    await waitFor("the open connection to end", () => p.openSockets().length === 0, 60_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${(await tryRun(`pgrep -a -u ${EMO_UID}; ps -o pid,user,etime,args -u ttyd`)).stdout}`);
    });
    await assertStaysClosed(p, "emo", async () => sh(`journalctl -q --no-pager --since ${JSON.stringify(cutAt)} -t ws-term-attach -u ws-ttyd -o cat || true`));
    assert.equal((await tryRun(`pgrep -u ${EMO_UID}`)).stdout.trim(), "", "nothing of emo's runs");
    await p.screenshot(path.join(ARTIFACTS, "4-emo-suspended-connection-ended.png"));
    const since = await hostNow();
    const again = await open("emo", "work");
    await waitFor("the refusal of suspended emo", async () => /refused: identity emo is not in/.test(await journal(since)), 30_000);
    assert.equal((await tryRun(`pgrep -u ${EMO_UID}`)).stdout.trim(), "", "no shell for emo");
    await again.screenshot(path.join(ARTIFACTS, "5-emo-suspended-refused.png"));
  });
});
