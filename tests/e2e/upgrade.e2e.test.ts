/**
 * An upgrade under the real engine, every surface on: the example roster deployed by the
 * release before issue 25 (FROM), the users at work (files in their homes, an uncommitted file
 * in their clone, a tmux session), then this release's `up` over that state. Issue 25 merged
 * `<user>-home` into `<user>-account` and `<user>-code-clone` into `<user>-git-credentials`; an
 * older state still holds the merged-away resources, and the engine removes them after this
 * release's resources are applied. The suite checks that the upgrade touches only those (the
 * merged commands run again: every account's, a suspended one's too, and each active user's
 * credentials; the merged-away ones are removed without anything run on the host), and, when
 * the host library changed since FROM, that every other command changed only to the new
 * library's name (so it runs again once, the host files install the new library), that each
 * dashboard token Secret only gains the digest of its inputs and a wait that names it (a
 * metadata update), and that no
 * user notices: homes byte for byte (content, mode, owner, size, mtime), the delivered
 * credentials and kubeconfig, clones, sessions, logins, Vault and git over HTTP as before, no
 * drift, a clean state audit, and a no-op `up` after it.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { Change, changeCollector, E2E, homesFingerprintCommand, PROJECT_DIR, projectAt, rootLogins, setupE2E, timed, urnName } from "../../dev/e2e";
import { vaultRequest } from "../../dev/services";
import { APPLIED_ANNOTATION, tokenWaitFor, WAIT_FOR_ANNOTATION } from "../../components/kube/tokenSecret";

/**
 * The last release where a user's home and the infra clone were their own resources. When a
 * later change alters what an upgrade from it does beyond a new host library, say so in
 * `expected` below (or move FROM to the release the team last deployed): an upgrade's plan is
 * part of what a change is reviewed for.
 */
const FROM = "3bc4290";
type User = { name: string; state?: string; forgejo?: string; sshKeys: string[] } & Record<string, unknown>;
const roster = YAML.parse(fs.readFileSync(path.join(PROJECT_DIR, "roster.example.yaml"), "utf8")) as { users: User[] };
const active = roster.users.filter((u) => (u.state ?? "active") === "active").map((u) => u.name);
const onHost = roster.users.filter((u) => u.state !== "offboarded").map((u) => u.name);
const keys: Record<string, string> = {};
const times: Array<[string, number]> = [];
let e: E2E;
let oldSource = "";

/**
 * What the agents write on their own schedule, whatever a deploy does: the clone refresh timer's
 * git internals (the clones are compared by `git status` and HEAD instead) and the token renewal
 * timer's state and notice.
 */
const ownSchedule = onHost.flatMap((u) => [`${u}/code/.git`, `${u}/.local/state/claude-token-renew`, `${u}/.claude-token-renew.notice`]);

/** Every file of every account on the host, and what the users hold: credentials, clones, sessions. */
async function snapshot() {
  return {
    homes: await e.sh(homesFingerprintCommand(onHost, ownSchedule)),
    procs: await e.sh(`ps -u ${onHost.join(",")} -o pid=,lstart=,args= | grep -E 'tmux|sleep 86400' | sort -n`),
    ids: await e.sh(`for u in ${onHost.join(" ")}; do id $u; done`),
    clones: await e.sh(
      active
        .map(
          (u) => `echo ${u}; runuser -u ${u} -- git -C /home/${u}/code status --porcelain --branch; runuser -u ${u} -- git -C /home/${u}/code rev-parse HEAD`,
        )
        .join("; "),
    ),
  };
}

/** The resources that ship the host's files (the host library among them) to the host. */
const HOST_FILES = new Set(["host-files", "host-files-copy"]);
const LIBRARY = /\/ws-([0-9a-f]{8,})\.sh/g;

/**
 * Whether a change is the new host library only: the host files installing it, or a command
 * whose inputs are the old ones with the one old library's name replaced by the new one's.
 */
function newLibraryOnly(x: Change): boolean {
  if (x.op !== "update") return false;
  if (HOST_FILES.has(urnName(x.urn))) return true;
  const before = JSON.stringify(x.oldInputs ?? {});
  const after = JSON.stringify(x.newInputs ?? {});
  const [from, to] = [before, after].map((t) => [...new Set([...t.matchAll(LIBRARY)].map((m) => m[1]))]);
  return from.length === 1 && to.length === 1 && from[0] !== to[0] && before.split(from[0]).join(to[0]) === after;
}

/** The dashboard token Secrets of active namespace owners (`<user>-dashboard-token-<namespace>`). */
const tokenSecrets = roster.users
  .filter((u) => (u.state ?? "active") === "active")
  .flatMap((u) => ((u.namespaces as string[] | undefined) ?? []).map((ns) => ({ name: `${u.name}-dashboard-token-${ns}` })));

/**
 * Whether a change is a dashboard token Secret learning to wait for the object as applied
 * (after FROM): its inputs are the old ones with two annotations added, the digest of its
 * inputs and the `pulumi.com/waitFor` that names it (components/kube/tokenSecret.ts). A metadata
 * update of the Secret; nothing runs on the host.
 */
function newTokenWaitOnly(x: Change): boolean {
  if (x.op !== "update" || x.type !== "kubernetes:core/v1:Secret" || !tokenSecrets.some((s) => s.name === urnName(x.urn))) return false;
  const annotations = (i: Record<string, unknown> | undefined) => ((i?.metadata as Record<string, unknown>)?.annotations ?? {}) as Record<string, string>;
  const without = (i: Record<string, unknown> | undefined) => {
    const c = structuredClone(i ?? {});
    delete annotations(c)[WAIT_FOR_ANNOTATION];
    delete annotations(c)[APPLIED_ANNOTATION];
    return JSON.stringify(c);
  };
  const added = annotations(x.newInputs);
  return (
    /^[0-9a-f]{16}$/.test(added[APPLIED_ANNOTATION]) &&
    added[WAIT_FOR_ANNOTATION] === tokenWaitFor(added[APPLIED_ANNOTATION]) &&
    without(x.oldInputs) === without(x.newInputs)
  );
}

const names = async () => new Set((await e.stack.exportStack()).deployment.resources.map((r: { urn: string }) => urnName(r.urn)));

before(async () => {
  const t0 = Date.now();
  oldSource = projectAt(FROM);
  e = await setupE2E("upgrade", roster, { source: oldSource });
  for (const u of roster.users) {
    const k = e.keypair(u.name);
    keys[u.name] = k.priv;
    u.sshKeys = [k.pub];
  }
  e.writeRoster(roster);
  times.push(["set-up: host boot, Vault, Gitea, kube-apiserver, stack", Date.now() - t0]);
});
after(async () => {
  console.log("# upgrade step times:");
  for (const [label, ms] of times) console.log(`#   ${label}: ${(ms / 1000).toFixed(1)} s`);
  if (e) await e.stop();
  if (oldSource) fs.rmSync(oldSource, { recursive: true, force: true });
});

let before_: Awaited<ReturnType<typeof snapshot>>;
let merged: { homes: string[]; clones: string[] };
let secretFiles = "";
const secretFilesCmd = [
  ...active.map((u) => `sha256sum /home/${u}/.git-credentials /home/${u}/.config/claude-token-renew/vault.json`),
  "sha256sum /home/nadia/.kube/config",
].join("; ");

test(`the release before (${FROM}): the example roster up, the users at work`, async () => {
  const r = await timed(times, `${FROM}: up + no-op up`, () => e.converge());
  assert.equal(r.up.summary.result, "succeeded");
  const all = await names();
  merged = {
    homes: onHost.map((u) => `${u}-home`).filter((n) => all.has(n)),
    clones: active.map((u) => `${u}-code-clone`).filter((n) => all.has(n)),
  };
  // the structure this suite is about: without it the test would prove nothing
  assert.deepEqual(
    merged.homes,
    onHost.map((u) => `${u}-home`),
    "the older state has each account's home (a suspended one's too) as its own resource",
  );
  assert.deepEqual(
    merged.clones,
    active.map((u) => `${u}-code-clone`),
    "and each active user's infra clone",
  );
  for (const u of active) {
    assert.equal(
      e.sshAs(
        u,
        keys[u],
        `echo work >~/notes.txt; mkdir -p ~/work/deep && echo x >~/work/deep/f; echo wip >~/code/WIP.txt; tmux new-session -d -s work 'sleep 86400'; echo ok`,
      ).out,
      "ok",
    );
  }
  for (const u of onHost.filter((x) => !active.includes(x))) await e.sh(`echo kept >/home/${u}/notes.txt && chown ${u}: /home/${u}/notes.txt`);
  before_ = await snapshot();
  assert.match(before_.procs, /tmux new-session -d -s work/);
  secretFiles = await e.sh(secretFilesCmd);
});

test("this release over it: only the merged resources change, and no user notices", async () => {
  e.useProject(PROJECT_DIR);
  const c = changeCollector();
  await timed(times, "this release: preview", () => e.preview({ onEvent: c.onEvent }));
  const planned = c.changed.map((x) => `${x.op} ${urnName(x.urn)}`).sort();
  const merge = [
    ...onHost.map((u) => `update ${u}-account`),
    ...active.map((u) => `update ${u}-git-credentials`),
    ...merged.homes.map((n) => `delete ${n}`),
    ...merged.clones.map((n) => `delete ${n}`),
    ...tokenSecrets.map((t) => `update ${t.name}`),
  ];
  assert.deepEqual(
    c.changed
      .filter((x) => x.type === "kubernetes:core/v1:Secret")
      .filter((x) => !newTokenWaitOnly(x))
      .map((x) => urnName(x.urn)),
    [],
    "the dashboard token Secrets change only in what the provider waits for",
  );
  const libraryOnly = c.changed.filter((x) => !merge.includes(`${x.op} ${urnName(x.urn)}`));
  assert.deepEqual(
    libraryOnly.map((x) => x.op).filter((op) => op !== "update"),
    [],
    `nothing created, replaced or deleted but the merge:\n${planned.join("\n")}`,
  );
  assert.deepEqual(
    libraryOnly.filter((x) => !newLibraryOnly(x)).map((x) => urnName(x.urn)),
    [],
    "every change beyond the merge is the host files installing the new host library, or a command naming it instead of the old one",
  );
  const expected = [...merge, ...libraryOnly.map((x) => `update ${urnName(x.urn)}`)].sort();
  assert.deepEqual(planned, expected, "the preview shows the merge, the new host library and nothing else");

  const rootBefore = await rootLogins(e);
  const u = changeCollector();
  const r = await timed(times, "this release: up + no-op up", () => e.converge({ onEvent: u.onEvent }));
  assert.equal(r.up.summary.result, "succeeded");
  assert.deepEqual(u.changed.map((x) => `${x.op} ${urnName(x.urn)}`).sort(), expected, "the up did what the preview showed");
  // one remote command per updated command; the removed ones and the Kubernetes objects run nothing on the host
  const updates = u.changed.filter((x) => x.op === "update" && x.type.startsWith("command:")).length;
  assert.equal(updates, expected.filter((x) => x.startsWith("update ")).length - tokenSecrets.length);
  assert.equal((await rootLogins(e)) - rootBefore - 1, updates, "root logins of the upgrade (the count's own login less)");

  const all = await names();
  for (const n of [...merged.homes, ...merged.clones]) assert.equal(all.has(n), false, `${n} is gone from the state`);
  const now = await snapshot();
  assert.equal(now.homes, before_.homes, "every home byte for byte");
  assert.equal(now.procs, before_.procs, "every process (tmux sessions) still running");
  assert.equal(now.ids, before_.ids);
  assert.equal(now.clones, before_.clones, "the clones: same commit, the uncommitted file still there");
  assert.equal(await e.sh(secretFilesCmd), secretFiles, "the delivered credentials unchanged");
  for (const name of active) assert.equal(e.sshAs(name, keys[name]).out, name);
  for (const name of onHost.filter((x) => !active.includes(x))) assert.notEqual(e.sshAs(name, keys[name]).code, 0, `${name} stays suspended`);
  const cred = JSON.parse(await e.sh("cat /home/emo/.config/claude-token-renew/vault.json"));
  const vaultLogin = (await vaultRequest(e.vault, "", "POST", "auth/approle/login", cred)) as { auth: { policies: string[] } };
  assert.deepEqual(vaultLogin.auth.policies, ["claude-renew-emo"], "emo's Vault credential still logs in, with emo's policy");
  const f = e.forgejo!;
  const token = /\/\/[^:/]+:([^@]+)@/.exec(await e.sh("cat /home/emo/.git-credentials"))?.[1] ?? "";
  const auth = Buffer.from(`ebarzin:${token}`).toString("base64");
  const refs = await fetch(`${f.url}${f.repo.owner}/${f.repo.name}.git/info/refs?service=git-upload-pack`, { headers: { Authorization: `Basic ${auth}` } });
  assert.equal(refs.status, 200, "emo's token still reads the infra repo over git's HTTP");
  const drift = await e.sh("workstations-heal --check; echo rc=$?");
  assert.match(drift, /^no drift \(\d+ records\)\s+rc=0\s*$/m, `drift after the upgrade\n${drift}`);
  assert.deepEqual(e.auditState(), []);
});
