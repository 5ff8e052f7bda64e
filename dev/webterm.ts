/**
 * The web terminal's proxy side for tests: a real nginx running docs/nginx-web-terminal.conf
 * (its listen, TLS, outpost and upstream lines swapped for local ones) in front of the test
 * host's real ttyd, and a stand-in for authentik's outpost that plays the forward auth.
 *
 *   browser ──► nginx 127.0.0.1:<port> ──auth_request──► outpost stand-in (cookie test_login)
 *                      │
 *                      └──► ssh -L tunnel ──► /run/ws-ttyd/ttyd.sock on the test host
 *
 * The outpost stand-in answers /outpost.goauthentik.io/auth/nginx with 200 and
 * `X-authentik-username: <login>` when the request carries the cookie `test_login=<login>`,
 * else 401 (nginx then redirects to /outpost.goauthentik.io/start, a page that says so). It is
 * authentik's contract as nginx sees it; authentik itself is not run here.
 *
 * The tunnel is root's ssh on the test host (the socket's directory lets only www-data and
 * ttyd in; the tests check that from the host's own accounts).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { TERMINAL_SOCKET } from "../components/hostContract";
import { LoopbackServer } from "./http";
import type { TestHost } from "./testhost/testhost";
import { freePort, portFree, sleep, waitFor } from "./wait";
import { tempDir } from "./tmp";

const ROOT = path.resolve(__dirname, "..");
export const NGINX_EXAMPLE = path.join(ROOT, "docs/nginx-web-terminal.conf");
export const NGINX = process.env.WORKSTATIONS_NGINX ?? "/usr/sbin/nginx";

/** authentik's outpost, as nginx's auth_request sees it: the login is the `test_login` cookie. */
export class OutpostStandIn extends LoopbackServer {
  /** Every identity it vouched for, in order. */
  readonly vouched: string[] = [];
  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/outpost.goauthentik.io/auth/nginx") {
      const m = /(?:^|;\s*)test_login=([A-Za-z0-9._@-]+)/.exec(req.headers.cookie ?? "");
      if (!m) {
        res.writeHead(401).end();
        return;
      }
      this.vouched.push(m[1]);
      res.writeHead(200, { "X-authentik-username": m[1] }).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/html" }).end("<html><body><h1>test login required (outpost stand-in)</h1></body></html>");
  }
}

/** The example server block with local listen, outpost and upstream; everything else as shipped. */
export function nginxTestConfig(example: string, o: { listen: number; outpost: string; upstream: string }): string {
  const swaps: Array<[RegExp, string]> = [
    [/^(\s*)listen 443 ssl;$/m, `$1listen 127.0.0.1:${o.listen};`],
    [/^\s*ssl_certificate(_key)? .*;\n/gm, ""],
    [/^(\s*)server_name .*;$/m, "$1server_name _;"],
    [/proxy_pass https:\/\/authentik\.example\.com\/outpost\.goauthentik\.io;/, `proxy_pass ${o.outpost}/outpost.goauthentik.io;`],
    [/server unix:\/run\/ws-ttyd\/ttyd\.sock;/, `server ${o.upstream};`],
  ];
  let out = example;
  for (const [re, to] of swaps) {
    const next = out.replace(re, to);
    if (next === out) throw new Error(`nginxTestConfig: ${re} matches nothing in ${NGINX_EXAMPLE}`);
    out = next;
  }
  return out;
}

export class WebTerminalProxy {
  readonly outpost = new OutpostStandIn();
  private nginx?: ChildProcess;
  private tunnel?: ChildProcess;
  private dir = "";
  port = 0;
  tunnelPort = 0;

  /** The browser's URL of the terminal (`?arg=` session names appended by the caller). */
  get url(): string {
    return `http://127.0.0.1:${this.port}/`;
  }

  async start(h: TestHost): Promise<void> {
    if (!fs.existsSync(NGINX)) throw new Error(`${NGINX} is missing: apt-get install nginx-light (dev/setup)`);
    this.dir = tempDir("ws-nginx-");
    await this.outpost.start();
    this.tunnelPort = await freePort();
    this.tunnel = spawn(
      "ssh",
      [
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        `UserKnownHostsFile=${h.knownHostsPath}`,
        "-i",
        h.privateKeyPath,
        "-p",
        String(h.port),
        "-L",
        `127.0.0.1:${this.tunnelPort}:${TERMINAL_SOCKET}`,
        "root@127.0.0.1",
      ],
      { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, SSH_AUTH_SOCK: "" } },
    );
    const tunnelErr: string[] = [];
    this.tunnel.stderr?.on("data", (d: Buffer) => tunnelErr.push(d.toString()));
    await waitFor(
      "the ssh tunnel to ttyd's socket",
      async () => {
        if (this.tunnel?.exitCode !== null) throw new Error(`ssh -L exited: ${tunnelErr.join("")}`);
        return !(await portFree(this.tunnelPort));
      },
      30_000,
    );
    this.port = await freePort();
    const conf = `daemon off;
pid ${this.dir}/nginx.pid;
error_log ${this.dir}/error.log info;
events { worker_connections 64; }
http {
    access_log ${this.dir}/access.log;
    client_body_temp_path ${this.dir}/tmp-body;
    proxy_temp_path ${this.dir}/tmp-proxy;
    fastcgi_temp_path ${this.dir}/tmp-fcgi;
    uwsgi_temp_path ${this.dir}/tmp-uwsgi;
    scgi_temp_path ${this.dir}/tmp-scgi;
${nginxTestConfig(fs.readFileSync(NGINX_EXAMPLE, "utf8"), { listen: this.port, outpost: this.outpost.url, upstream: `127.0.0.1:${this.tunnelPort}` })}
}
`;
    fs.writeFileSync(path.join(this.dir, "nginx.conf"), conf);
    const t = spawnSync(NGINX, ["-t", "-p", this.dir, "-c", path.join(this.dir, "nginx.conf")], { encoding: "utf8" });
    if (t.status !== 0) throw new Error(`nginx -t refuses the example's test config: ${t.stderr}`);
    this.nginx = spawn(NGINX, ["-p", this.dir, "-c", path.join(this.dir, "nginx.conf")], { stdio: "ignore" });
    await waitFor("nginx and the tunnel", async () => (await fetch(this.url, { redirect: "manual" }).catch(() => undefined))?.status === 302, 30_000);
  }

  /** nginx's error log (for failure messages). */
  errorLog(): string {
    return this.dir ? fs.readFileSync(path.join(this.dir, "error.log"), "utf8").split("\n").slice(-20).join("\n") : "";
  }

  async stop(): Promise<void> {
    for (const p of [this.nginx, this.tunnel]) if (p && p.exitCode === null) p.kill("SIGTERM");
    await this.outpost.stop();
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * After a user's cut ended their open connection: the page stays closed. ttyd 1.7.7 ends every
 * connection without a close frame (the browser sees 1006), and its page reconnects on any close
 * but 1000 unless the unit sets `disableReconnect`: then a refused tab would be retried about
 * twice a second for as long as it is open. Watches `quietMs`: no new connection, and no
 * refusal of `user` in `journal()` (the attach program's lines since the cut).
 */
export async function assertStaysClosed(
  page: { openSockets(): string[]; readonly sockets: Map<string, unknown>; readonly console: string[] },
  user: string,
  journal: () => Promise<string>,
  quietMs = 8_000,
): Promise<void> {
  const before = page.sockets.size;
  await sleep(quietMs);
  const log = (await journal()).split("\n");
  const refusals = log.filter((l) => l.includes(`refused: identity ${user} is not in`)).length;
  const made = page.sockets.size - before;
  if (page.openSockets().length !== 0 || made > 0 || refusals > 0)
    throw new Error(
      [
        `${user}'s page reconnects after the cut: ${made} new connection(s) in ${quietMs} ms, ${page.openSockets().length} open, ${refusals} refusals (ttyd's page reconnects by itself unless --client-option disableReconnect=true)`,
        ...page.console.filter((l) => l.includes("[ttyd]")).slice(-6),
        ...log.slice(-8),
      ].join("\n"),
    );
}
