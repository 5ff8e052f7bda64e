// Fake OIDC issuer, for tests only: the discovery document and the JWKS over HTTPS (with a
// certificate the test CA signed), and `mintIdToken`, which signs an RS256 ID token for a user
// exactly as an IdP would hand it to `kubectl oidc-login`. The API server fetches the JWKS
// from here and verifies every token against it, so RoleBindings are checked against the
// identity the real cluster would see.
import * as crypto from "node:crypto";
import https from "node:https";
import type { AddressInfo } from "node:net";

export interface IdTokenClaims {
  /** Subject (stable user id). */
  sub: string;
  email?: string;
  email_verified?: boolean;
  preferred_username?: string;
  groups?: string[];
  /** Lifetime in seconds (default 600); negative = already expired. */
  ttl?: number;
  /** Audience (default: the issuer's client id). */
  aud?: string;
  [k: string]: unknown;
}

export class FakeOidcIssuer {
  private server: https.Server | null = null;
  private readonly keys = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  private readonly kid = crypto.randomBytes(8).toString("hex");
  /** https://127.0.0.1:PORT (no trailing slash): the `iss` of every token. */
  issuer = "";
  /** Requests served, by path (the API server fetches discovery and JWKS). */
  readonly hits: Record<string, number> = {};

  constructor(
    private readonly tls: { cert: string; key: string },
    readonly clientId: string,
  ) {}

  async start(port = 0): Promise<this> {
    const jwk = { ...this.keys.publicKey.export({ format: "jwk" }), kid: this.kid, use: "sig", alg: "RS256" };
    this.server = https.createServer({ cert: this.tls.cert, key: this.tls.key }, (req, res) => {
      const p = (req.url ?? "/").split("?")[0];
      this.hits[p] = (this.hits[p] ?? 0) + 1;
      const json = (o: unknown) => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify(o));
      };
      if (p === "/.well-known/openid-configuration") {
        return json({
          issuer: this.issuer,
          jwks_uri: `${this.issuer}/jwks`,
          authorization_endpoint: `${this.issuer}/authorize`,
          token_endpoint: `${this.issuer}/token`,
          response_types_supported: ["code"],
          subject_types_supported: ["public"],
          id_token_signing_alg_values_supported: ["RS256"],
          claims_supported: ["sub", "email", "email_verified", "preferred_username", "groups"],
        });
      }
      if (p === "/jwks") return json({ keys: [jwk] });
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(port, "127.0.0.1", () => resolve());
    });
    this.issuer = `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** A signed ID token for `claims` (RS256, this issuer, audience the client id). */
  mintIdToken(claims: IdTokenClaims): string {
    const now = Math.floor(Date.now() / 1000);
    const { ttl = 600, aud = this.clientId, ...rest } = claims;
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const head = b64({ alg: "RS256", typ: "JWT", kid: this.kid });
    const body = b64({ iss: this.issuer, aud, iat: now - 5, nbf: now - 5, exp: now + ttl, ...rest });
    const sig = crypto.sign("RSA-SHA256", Buffer.from(`${head}.${body}`), this.keys.privateKey).toString("base64url");
    return `${head}.${body}.${sig}`;
  }

  /** A token for a roster user the way the IdP would describe them. */
  tokenFor(u: { name: string; email: string }, extra: Partial<IdTokenClaims> = {}): string {
    return this.mintIdToken({ sub: `sub-${u.name}`, email: u.email, email_verified: true, preferred_username: u.name, ...extra });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections?.();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
