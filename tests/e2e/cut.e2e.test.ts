/**
 * One planted file must not stop the cut (issue 19 item 1), under the real engine (host,
 * Vault, Forgejo on the toolchain's Gitea): a user replaces what the program delivered into their home with something of
 * another type (vault.json and ~/.git-credentials become directories, ~/.kube and ~/.codex
 * become files, start-claude.sh a fifo). Then suspend (a roster edit and `up`), offboard, and
 * `destroy --target` of one user each complete: login, keys, sudo, sessions, the Vault role,
 * the Forgejo collaborator and token are cut, and the planted files are untouched.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { E2E, PROJECT_DIR, setupE2E } from "../../dev/e2e";
import { vaultRequest } from "../../dev/services";

type User = { name: string; uid: number; state?: string } & Record<string, unknown>;
type Api = (method: string, apiPath: string) => Promise<{ status: number }>;
/** `up` through the harness when it has one (it first creates the roster's Forgejo users), else the stack's. */
const up = () => {
  const h = e as unknown as { up?: () => ReturnType<E2E["stack"]["up"]>; stack: E2E["stack"] };
  return h.up ? h.up() : h.stack.up({ color: "never" });
};
let e: E2E;
const roster = YAML.parse(fs.readFileSync(path.join(PROJECT_DIR, "roster.example.yaml"), "utf8")) as { users: User[] };
const user = (name: string) => roster.users.find((u) => u.name === name)!;

const PLANT = [
  "rm -f ~/.config/claude-token-renew/vault.json && mkdir -p ~/.config/claude-token-renew/vault.json/planted",
  "rm -f ~/.git-credentials && mkdir ~/.git-credentials",
  "rm -rf ~/.kube && echo planted > ~/.kube",
  "rm -rf ~/.codex && echo planted > ~/.codex",
  "rm -f ~/start-claude.sh && mkfifo ~/start-claude.sh",
].join(" && ");

const plant = (name: string) => e.sh(`runuser -u ${name} -- bash -c 'cd && ${PLANT}'`);
const planted = (name: string) =>
  e.sh(
    `cd /home/${name} && find .config/claude-token-renew/vault.json .git-credentials .kube .codex start-claude.sh -printf '%y %m %u %s %p\\n' | sort && cat .kube .codex`,
  );

/** The cut as the host, Vault and Forgejo see it. */
async function assertCut(name: string, cred: unknown): Promise<void> {
  assert.equal(await e.sh(`getent shadow ${name} | cut -d: -f8`), "1", `${name}'s account expired`);
  assert.equal(await e.sh(`cat /etc/ssh/authorized_keys.d/${name} 2>/dev/null || true`), "", `${name}'s keys removed`);
  assert.equal(await e.sh(`pgrep -u ${name} || true`), "", `${name}'s processes gone`);
  await assert.rejects(vaultRequest(e.vault, "", "POST", "auth/approle/login", cred), /HTTP 400/, `${name}'s AppRole is gone`);
  const forgejo = (e as unknown as { forgejo?: { api: Api; repo: { owner: string; name: string } } }).forgejo;
  if (forgejo) {
    const collab = await forgejo.api("GET", `repos/${forgejo.repo.owner}/${forgejo.repo.name}/collaborators/${user(name).forgejo}`);
    assert.equal(collab.status, 404, `${name} is no collaborator`);
  }
}

before(async () => {
  // Kubernetes off: the Kubernetes cut (bindings, tokens, what the owner made) has its own test
  // on the real API server (tests/kube/cut.test.ts); the kubeconfig-remove verb with a planted
  // ~/.kube is in tests/host/cut.host.test.ts. This file proves the engine's delete order.
  e = await (setupE2E as (n: string, r: unknown, o?: { kube?: boolean }) => Promise<E2E>)("cut", roster, { kube: false });
  const r = await up();
  assert.equal(r.summary.result, "succeeded");
});
after(async () => {
  if (e) await e.stop();
});

/** Plants files in `name`'s home, sets their roster state, `up`: the cut completes, the files stay. */
async function stateWithPlanted(name: string, state: string): Promise<void> {
  const cred = JSON.parse(await e.sh(`cat /home/${name}/.config/claude-token-renew/vault.json`));
  await plant(name);
  const before = await planted(name);
  user(name).state = state;
  e.writeRoster(roster);
  const r = await up();
  assert.equal(r.summary.result, "succeeded");
  await assertCut(name, cred);
  assert.equal(await planted(name), before);
}

test("suspend with planted files: the cut completes, the files are untouched", () => stateWithPlanted("emo", "suspended"));

test("offboard with planted files: the cut completes, the files are untouched", async () => {
  await stateWithPlanted("nadia", "offboarded");
  assert.equal(await e.sh("test -e /etc/workstations/users.d/nadia.json && echo yes || echo no"), "no", "nadia left users.json");
});

test("destroy --target with planted files: the cut completes, the files are untouched", async () => {
  // emo clears what they planted and comes back: the credentials are delivered again
  await e.sh(`runuser -u emo -- bash -c 'cd && rm -rf .config/claude-token-renew/vault.json .git-credentials .kube .codex start-claude.sh'`);
  user("emo").state = "active";
  e.writeRoster(roster);
  assert.equal((await up()).summary.result, "succeeded");
  const cred = JSON.parse(await e.sh("cat /home/emo/.config/claude-token-renew/vault.json"));
  await plant("emo");
  const before = await planted("emo");
  const urn = (await e.stack.exportStack()).deployment.resources.find(
    (r: { type: string; urn: string }) => r.type === "workstations:index:UserWorkstation" && r.urn.endsWith("::emo"),
  ).urn;
  await e.stack.destroy({ color: "never", target: [urn], targetDependents: true });
  await assertCut("emo", cred);
  assert.equal(await planted("emo"), before);
});
