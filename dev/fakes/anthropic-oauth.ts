// Fake Anthropic OAuth token endpoint + profile endpoint, for tests only.
//
// Behaves like the real service as described in shared/notes/claude-token-renewal.md:
// - refresh tokens rotate on every use and are single-use;
// - presenting a spent refresh token revokes the WHOLE family (all refresh and access tokens),
//   and every later request for that family answers invalid_grant / 401;
// - the login (refresh chain) has a fixed deadline that refreshing does not extend;
// - it can be told to answer 429, 5xx, to hang (timeout), or to rotate and then drop the
//   connection (the response is lost, the old token is spent anyway).
import { LoopbackServer, readBody, sendJson as send } from "../http";
import http from "node:http";
import crypto from "node:crypto";

export type FailMode = { kind: "429"; retryAfterSeconds?: number } | { kind: "5xx"; status?: number } | { kind: "timeout" } | { kind: "drop-after-rotate" };

export interface ClaudeAiOauth {
  accessToken: string;
  refreshToken: string;
  expiresAt: number;
  refreshTokenExpiresAt?: number;
  scopes: string[];
  subscriptionType: string;
  rateLimitTier: string;
}

export interface FakeOAuthOptions {
  clientId?: string;
  /** access token lifetime, seconds (real: ~8 h) */
  accessTtlSeconds?: number;
  /** login (refresh chain) lifetime, seconds (real: ~27-30 days) */
  loginTtlSeconds?: number;
  /** leave refresh_token_expires_in out of refresh answers */
  omitRefreshTokenExpiresIn?: boolean;
  /** token prefixes; the defaults look like real Claude tokens */
  accessPrefix?: string;
  refreshPrefix?: string;
  profileBeta?: string;
  /** clock used for every expiry decision (ms); default Date.now */
  now?: () => number;
}

interface Family {
  id: string;
  email: string;
  orgName: string;
  deadline: number;
  accessTtlSeconds: number;
  revoked: boolean;
  current: string; // the only refresh token that may be used
  spent: Set<string>;
  access: Map<string, number>; // access token -> expiresAt
}

export interface TokenRequestRecord {
  at: number;
  familyId: string | null;
  outcome: "rotated" | "invalid_grant" | "reuse-revoked" | "failed" | "bad-request";
}

export class FakeAnthropicOAuth extends LoopbackServer {
  readonly opts: Required<Omit<FakeOAuthOptions, "now">>;
  now: () => number;
  private families = new Map<string, Family>();
  private byRefresh = new Map<string, Family>();
  private byAccess = new Map<string, Family>();
  private failQueue: FailMode[] = [];
  private failAlways: FailMode | null = null;
  /** every token this fake ever issued (access and refresh), for leak checks */
  readonly issued: string[] = [];
  readonly log: TokenRequestRecord[] = [];
  refreshes = 0;
  revocations = 0;
  invalidGrants = 0;
  tokenRequests = 0;
  profileRequests = 0;
  failuresServed = 0;

  constructor(opts: FakeOAuthOptions = {}) {
    super();
    this.opts = {
      clientId: opts.clientId ?? "fake-client-id",
      accessTtlSeconds: opts.accessTtlSeconds ?? 8 * 3600,
      loginTtlSeconds: opts.loginTtlSeconds ?? 28 * 86400,
      omitRefreshTokenExpiresIn: opts.omitRefreshTokenExpiresIn ?? false,
      accessPrefix: opts.accessPrefix ?? "sk-ant-oat01-",
      refreshPrefix: opts.refreshPrefix ?? "sk-ant-ort01-",
      profileBeta: opts.profileBeta ?? "oauth-2025-04-20",
    };
    this.now = opts.now ?? (() => Date.now());
  }

  get tokenUrl(): string {
    return `${this.url}/v1/oauth/token`;
  }
  get profileUrl(): string {
    return `${this.url}/api/oauth/profile`;
  }

  /** A fresh interactive login: a new token family for `email`. */
  login(email: string, o: { accessTtlSeconds?: number; loginTtlSeconds?: number; orgName?: string } = {}): ClaudeAiOauth {
    const now = this.now();
    const fam: Family = {
      id: crypto.randomUUID(),
      email,
      orgName: o.orgName ?? "Example Enterprise",
      deadline: now + (o.loginTtlSeconds ?? this.opts.loginTtlSeconds) * 1000,
      accessTtlSeconds: o.accessTtlSeconds ?? this.opts.accessTtlSeconds,
      revoked: false,
      current: "",
      spent: new Set(),
      access: new Map(),
    };
    this.families.set(fam.id, fam);
    const t = this.issue(fam, now);
    return {
      accessToken: t.access,
      refreshToken: t.refresh,
      expiresAt: t.accessExpiresAt,
      refreshTokenExpiresAt: fam.deadline,
      scopes: ["user:inference", "user:profile"],
      subscriptionType: "enterprise",
      rateLimitTier: "default_claude_max_5x",
    };
  }

  /** Fail the next `count` token requests with `mode`. */
  failNext(mode: FailMode, count = 1): void {
    for (let i = 0; i < count; i++) this.failQueue.push(mode);
  }
  /** Fail every token request with `mode` until called with null. */
  failAll(mode: FailMode | null): void {
    this.failAlways = mode;
  }

  familyOf(token: string): { id: string; email: string; revoked: boolean; deadline: number; current: string } | null {
    const f = this.byRefresh.get(token) ?? this.byAccess.get(token);
    return f ? { id: f.id, email: f.email, revoked: f.revoked, deadline: f.deadline, current: f.current } : null;
  }
  /** Is this refresh token the live (unspent) one of a live family? */
  isLiveRefresh(token: string): boolean {
    const f = this.byRefresh.get(token);
    return !!f && !f.revoked && f.current === token && f.deadline > this.now();
  }
  /** What the API would make of this access token: issued and unexpired in a live family, or why not. */
  accessState(token: string): "valid" | "expired" | "revoked" | "unknown" {
    const f = this.byAccess.get(token);
    if (!f) return "unknown";
    if (f.revoked) return "revoked";
    return (f.access.get(token) ?? 0) > this.now() ? "valid" : "expired";
  }
  /** Revoke a family from the server side (e.g. admin/logout elsewhere). */
  revokeFamily(token: string): void {
    const f = this.byRefresh.get(token) ?? this.byAccess.get(token);
    if (f) f.revoked = true;
  }

  private issue(fam: Family, now: number): { access: string; refresh: string; accessExpiresAt: number } {
    const access = this.opts.accessPrefix + crypto.randomBytes(24).toString("base64url");
    const refresh = this.opts.refreshPrefix + crypto.randomBytes(24).toString("base64url");
    const accessExpiresAt = now + fam.accessTtlSeconds * 1000;
    fam.access.set(access, accessExpiresAt);
    fam.current = refresh;
    this.byAccess.set(access, fam);
    this.byRefresh.set(refresh, fam);
    this.issued.push(access, refresh);
    return { access, refresh, accessExpiresAt };
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const body = await readBody(req);
    if (req.method === "POST" && url.pathname === "/v1/oauth/token") return this.token(req, res, body);
    if (req.method === "GET" && url.pathname === "/api/oauth/profile") return this.profile(req, res);
    send(res, 404, { type: "error", error: { type: "not_found_error", message: "not found" } });
  }

  private token(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    this.tokenRequests++;
    const now = this.now();
    const ctype = String(req.headers["content-type"] ?? "");
    let p: Record<string, string> = {};
    try {
      if (ctype.includes("application/json")) p = JSON.parse(body);
      else p = Object.fromEntries(new URLSearchParams(body));
    } catch {
      this.log.push({ at: now, familyId: null, outcome: "bad-request" });
      return send(res, 400, { error: "invalid_request", error_description: "malformed body" });
    }
    const fail = this.failQueue.shift() ?? this.failAlways;
    if (fail && fail.kind !== "drop-after-rotate") {
      this.failuresServed++;
      this.log.push({ at: now, familyId: null, outcome: "failed" });
      if (fail.kind === "timeout") return; // never answer; the socket is destroyed on stop()
      if (fail.kind === "429") {
        res.setHeader("retry-after", String(fail.retryAfterSeconds ?? 30));
        return send(res, 429, { type: "error", error: { type: "rate_limit_error", message: "rate limited" } });
      }
      return send(res, fail.status ?? 503, { type: "error", error: { type: "overloaded_error", message: "overloaded" } });
    }
    if (p.grant_type !== "refresh_token" || typeof p.refresh_token !== "string") {
      this.log.push({ at: now, familyId: null, outcome: "bad-request" });
      return send(res, 400, { error: "invalid_request", error_description: "grant_type=refresh_token and refresh_token are required" });
    }
    if (p.client_id !== this.opts.clientId) {
      this.log.push({ at: now, familyId: null, outcome: "bad-request" });
      return send(res, 401, { error: "invalid_client", error_description: "unknown client" });
    }
    const fam = this.byRefresh.get(p.refresh_token);
    const deny = (outcome: TokenRequestRecord["outcome"], why: string) => {
      this.invalidGrants++;
      this.log.push({ at: now, familyId: fam?.id ?? null, outcome });
      send(res, 400, { error: "invalid_grant", error_description: why });
    };
    if (!fam) return deny("invalid_grant", "unknown refresh token");
    if (fam.revoked) return deny("invalid_grant", "refresh token revoked");
    if (fam.current !== p.refresh_token) {
      // A spent token was presented: revoke the whole family.
      fam.revoked = true;
      this.revocations++;
      return deny("reuse-revoked", "refresh token reuse detected; token family revoked");
    }
    if (fam.deadline <= now) return deny("invalid_grant", "refresh token expired");
    fam.spent.add(p.refresh_token);
    const t = this.issue(fam, now);
    this.refreshes++;
    this.log.push({ at: now, familyId: fam.id, outcome: "rotated" });
    if (fail && fail.kind === "drop-after-rotate") {
      this.failuresServed++;
      req.socket.destroy();
      return;
    }
    const answer: Record<string, unknown> = {
      token_type: "Bearer",
      access_token: t.access,
      expires_in: fam.accessTtlSeconds,
      refresh_token: t.refresh,
      scope: "user:inference user:profile",
      account: { uuid: fam.id, email_address: fam.email },
      organization: { uuid: crypto.createHash("sha256").update(fam.orgName).digest("hex").slice(0, 32), name: fam.orgName },
    };
    if (!this.opts.omitRefreshTokenExpiresIn) answer.refresh_token_expires_in = Math.max(0, Math.floor((fam.deadline - now) / 1000));
    send(res, 200, answer);
  }

  private profile(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.profileRequests++;
    const auth = String(req.headers.authorization ?? "");
    const m = /^Bearer (.+)$/.exec(auth);
    if (req.headers["anthropic-beta"] !== this.opts.profileBeta) {
      return send(res, 401, { type: "error", error: { type: "authentication_error", message: "OAuth authentication is currently not supported." } });
    }
    const fam = m ? this.byAccess.get(m[1]) : undefined;
    const exp = m && fam ? fam.access.get(m[1]) : undefined;
    if (!fam || fam.revoked || exp === undefined || exp <= this.now()) {
      return send(res, 401, { type: "error", error: { type: "authentication_error", message: "invalid or expired token" } });
    }
    send(res, 200, {
      account: {
        uuid: fam.id,
        email: fam.email,
        full_name: fam.email.split("@")[0],
        display_name: fam.email.split("@")[0],
        has_claude_max: false,
        has_claude_pro: false,
      },
      organization: {
        uuid: crypto.createHash("sha256").update(fam.orgName).digest("hex").slice(0, 32),
        name: fam.orgName,
        organization_type: "claude_enterprise",
      },
    });
  }
}

export async function startFakeAnthropic(opts: FakeOAuthOptions = {}): Promise<FakeAnthropicOAuth> {
  return new FakeAnthropicOAuth(opts).start();
}
