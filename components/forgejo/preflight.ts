/**
 * The program's Forgejo preflight: before any resource is registered, check the server
 * (reachable, a supported Forgejo/Gitea), the admin credential (works, site admin), the infra
 * repo (exists, has master), every roster Forgejo user the program will grant something to,
 * and that every login it mints an access token for is that roster user's own (`identities`:
 * not forgejoAdminUser, not the repo's owner, no site admin for a non-admin role, the account's
 * email is the roster's). A failure stops `pulumi preview`/`up` with one line naming the URL,
 * repo or users, and nothing at all is registered (so nothing is half-applied).
 *
 * Why here and not in the provider's `check`: the program is synchronous up to the first
 * resource, and `check` runs per resource while other resources (the host, the accounts) are
 * already registered and, in `up`, being created. The check itself is asynchronous (fetch),
 * so it runs in a child `node` process that the program waits for; the admin password goes to
 * it on stdin, never in argv or the environment of other processes.
 */
import { spawnSync } from "child_process";
import type { Plan } from "../plan";
import { PREFLIGHT_FUNCTIONS, PreflightIdentity, PreflightInput, PreflightResult } from "./api";

/**
 * The roster users the plan gives a Forgejo access token (`grants.forgejo`), as the preflight
 * checks them: the login must be the user's own, whose account has `forgejoEmail` (the
 * roster's `forgejoEmail`, else `email`); only role admin may hold a site admin's login.
 */
export function forgejoIdentities(plan: Plan): PreflightIdentity[] {
  return plan.users
    .filter((u) => u.grants.forgejo)
    .map((u) => ({ name: u.name, login: u.forgejoUser, email: u.forgejoEmail, emailOverride: u.forgejoEmail !== u.email, admin: u.role === "admin" }));
}

/** The child's source: the API functions (they use only globals) and a driver reading stdin. */
export function preflightSource(): string {
  const driver = `(async () => {
  let raw = "";
  for await (const chunk of process.stdin) raw += chunk;
  let r;
  try { r = await preflightCheck(JSON.parse(raw)); } catch (e) { r = { ok: false, message: "Forgejo preflight failed: " + (e && e.message || e) }; }
  process.stdout.write(JSON.stringify(r));
})();`;
  return `"use strict";\n${PREFLIGHT_FUNCTIONS.map((f) => String(f)).join("\n")}\n${driver}\n`;
}

/** Runs the check synchronously (at most `timeoutMs`); returns its result. */
export function runPreflight(input: PreflightInput, timeoutMs = 60_000): PreflightResult {
  const r = spawnSync(process.execPath, ["-e", preflightSource()], {
    input: JSON.stringify(input),
    encoding: "utf8",
    timeout: timeoutMs,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}) },
  });
  if (r.error || r.signal)
    return { ok: false, message: `Forgejo preflight against ${input.url} did not finish (${r.error?.message ?? r.signal}) within ${timeoutMs / 1000} s` };
  try {
    return JSON.parse(r.stdout) as PreflightResult;
  } catch {
    return {
      ok: false,
      message: `Forgejo preflight against ${input.url} failed: ${(r.stderr || r.stdout || `exit ${r.status}`).trim().split("\n").slice(-3).join(" | ")}`,
    };
  }
}
