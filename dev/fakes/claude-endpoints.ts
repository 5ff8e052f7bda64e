// Anthropic's real endpoints as the real Claude Code CLI reaches them, for tests only
// (issue 24 item 2; README "Real Claude"). Claude Code 2.1.332 has its OAuth endpoints built
// in (prod: https://platform.claude.com/v1/oauth/token); its only override,
// CLAUDE_CODE_CUSTOM_OAUTH_URL, accepts three Anthropic URLs and moves the credentials to
// another file. So the CLI keeps its prod configuration and its name resolution is redirected:
// inside a private mount namespace `hosts` is bind-mounted over /etc/hosts and maps the
// Anthropic hosts to 127.0.0.1, where one HTTPS server (a throwaway CA that the CLI trusts
// through NODE_EXTRA_CA_CERTS, port 443) routes
//   POST /v1/oauth/token, GET /api/oauth/profile -> the fake OAuth (single-use refresh tokens,
//                                                  the whole family revoked on reuse)
//   /v1/messages*, /v1/models*                   -> the fake Messages API, behind a Bearer
//                                                  check: 401 for an access token the fake
//                                                  OAuth did not issue, or expired, or revoked
//   anything else                                -> 404 (the CLI carries on without it)
import https from "node:https";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { FakeAnthropicOAuth } from "./anthropic-oauth";
import { FakeAnthropicMessages } from "./anthropic-messages";

/** The hosts Claude Code 2.1.332 was seen to reach (or try) with a login and a message. */
export const ANTHROPIC_HOSTS = [
  "platform.claude.com",
  "api.anthropic.com",
  "claude.ai",
  "console.anthropic.com",
  "claude.com",
  "statsig.anthropic.com",
  "mcp-proxy.anthropic.com",
  "downloads.claude.ai",
  "storage.googleapis.com",
];
/** Claude Code's OAuth client id (public: in the CLI and every login URL it prints). */
export const CLAUDE_CODE_CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";

function openssl(args: string[], cwd: string): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr || r.error}`);
}

/** A throwaway CA and a server certificate for ANTHROPIC_HOSTS, in `dir`. */
export function makePki(dir: string): { ca: string; key: string; cert: string } {
  fs.mkdirSync(dir, { recursive: true });
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=workstations test CA"], dir);
  fs.writeFileSync(path.join(dir, "ext.cnf"), `subjectAltName=${ANTHROPIC_HOSTS.map((h) => `DNS:${h}`).join(",")}\nbasicConstraints=CA:FALSE\n`);
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=api.anthropic.com"], dir);
  openssl(
    ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"],
    dir,
  );
  for (const f of ["ca.pem"]) fs.chmodSync(path.join(dir, f), 0o644);
  return { ca: path.join(dir, "ca.pem"), key: path.join(dir, "server.key"), cert: path.join(dir, "server.pem") };
}

export class FakeClaudeEndpoints {
  oauth!: FakeAnthropicOAuth;
  messages!: FakeAnthropicMessages;
  /** the CA the CLI must trust (NODE_EXTRA_CA_CERTS) and the /etc/hosts to bind over the real one */
  ca = "";
  hostsFile = "";
  /** requests the HTTPS server answered 404 (paths only) */
  readonly unknown: string[] = [];
  /** /v1/messages requests refused with 401, by the access token's state */
  readonly refused: string[] = [];
  /** the token endpoint answers this much later (a slow server widens every race window) */
  tokenDelayMs = 0;
  private server: https.Server | null = null;

  constructor(readonly dir: string) {}

  async start(): Promise<this> {
    const pki = makePki(path.join(this.dir, "pki"));
    this.ca = pki.ca;
    this.hostsFile = path.join(this.dir, "hosts");
    fs.writeFileSync(this.hostsFile, `127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.0.1\t${ANTHROPIC_HOSTS.join(" ")}\n`, { mode: 0o644 });
    this.oauth = await new FakeAnthropicOAuth({ clientId: CLAUDE_CODE_CLIENT_ID }).start();
    this.messages = await new FakeAnthropicMessages().start();
    const server = https.createServer({ key: fs.readFileSync(pki.key), cert: fs.readFileSync(pki.cert) }, (q, s) => void this.handle(q, s));
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e) => reject(new Error(`the fake Anthropic endpoints need 127.0.0.1:443: ${(e as Error).message}`)));
      server.listen(443, "127.0.0.1", resolve);
    });
    this.server = server;
    return this;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const p = new URL(req.url ?? "/", "https://x").pathname;
    if (p === "/v1/oauth/token" && this.tokenDelayMs) await new Promise((r) => setTimeout(r, this.tokenDelayMs));
    if (p === "/v1/oauth/token" || p === "/api/oauth/profile") return this.forward(this.oauth.url, req, body, res);
    if (p.startsWith("/v1/messages") || p.startsWith("/v1/models")) {
      const bearer = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ""))?.[1];
      const state = bearer ? this.oauth.accessState(bearer) : "none";
      if (state !== "valid") {
        this.refused.push(state);
        const t = JSON.stringify({
          type: "error",
          error: { type: "authentication_error", message: "OAuth token has expired. Please obtain a new token or refresh your existing token." },
        });
        res.writeHead(401, { "content-type": "application/json", "content-length": Buffer.byteLength(t) });
        return void res.end(t);
      }
      return this.forward(this.messages.url, req, body, res);
    }
    this.unknown.push(p);
    const t = JSON.stringify({ type: "error", error: { type: "not_found_error", message: "Not Found" } });
    res.writeHead(404, { "content-type": "application/json", "content-length": Buffer.byteLength(t) });
    res.end(t);
  }

  private forward(target: string, req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void {
    const u = new URL(target);
    const f = http.request(
      { host: u.hostname, port: u.port, method: req.method, path: req.url, headers: { ...req.headers, host: u.host, "content-length": String(body.length) } },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    f.on("error", () => res.destroy());
    f.end(body);
  }

  /**
   * argv that runs `argv` as `user` (uid, gid, home) in a private mount namespace whose
   * /etc/hosts sends ANTHROPIC_HOSTS here, in `cwd`, with `env` only (and the CA trusted).
   */
  asUser(u: { name: string; uid: number; gid: number; home: string }, cwd: string, env: Record<string, string>, argv: string[]): string[] {
    const e = { HOME: u.home, USER: u.name, LOGNAME: u.name, SHELL: "/bin/bash", PATH: "/usr/bin:/bin", LANG: "C.UTF-8", NODE_EXTRA_CA_CERTS: this.ca, ...env };
    return [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mount --bind "$1" /etc/hosts && cd "$2" && shift 2 && exec "$@"',
      "sh",
      this.hostsFile,
      cwd,
      "setpriv",
      `--reuid=${u.uid}`,
      `--regid=${u.gid}`,
      "--init-groups",
      "env",
      "-i",
      ...Object.entries(e).map(([k, v]) => `${k}=${v}`),
      ...argv,
    ];
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    await this.messages?.stop();
    await this.oauth?.stop();
  }
}
