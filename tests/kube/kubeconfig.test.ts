/**
 * The kubeconfig verbs of the host library, run here as root on a throwaway local user the
 * way the command provider runs them: the managed ~/.kube/config is written as the user,
 * 0600 in a 0700 ~/.kube, idempotently; a file the user changed (or wrote) is never
 * overwritten or removed; a symlinked ~/.kube is not followed; stdin that is not a managed
 * kubeconfig is refused.
 */
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { kubeconfigDeliverScript, kubeconfigRemoveScript } from "../../components/scripts/hostLib";
import { guardedKubeconfig } from "../../components/scripts/kubeconfig";
import { runRemote } from "../../dev/hostlib";
import { createLocalUser, LocalUser, tmp } from "../forgejo/lib";

let u: LocalUser;
const body = (server: string) => `apiVersion: v1\nkind: Config\nclusters:\n- name: workstations\n  cluster:\n    server: ${server}\n`;
const cfg = () => path.join(u.home, ".kube/config");

before(() => {
  u = createLocalUser("wskc");
});
after(() => u?.remove());

function deliver(content: string) {
  return runRemote(kubeconfigDeliverScript(u), content);
}
function remove() {
  return runRemote(kubeconfigRemoveScript(u));
}

test("deliver writes the managed kubeconfig as the user (0600 in a 0700 ~/.kube); a second run changes nothing", () => {
  const want = guardedKubeconfig(body("https://k8s.test:6443"));
  const r = deliver(want);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /changed: .*\.kube\/config/);
  assert.equal(fs.readFileSync(cfg(), "utf8"), want);
  const st = fs.statSync(cfg());
  assert.equal(st.uid, u.uid);
  assert.equal(st.mode & 0o777, 0o600);
  const d = fs.statSync(path.dirname(cfg()));
  assert.equal(d.uid, u.uid);
  assert.equal(d.mode & 0o777, 0o700);
  const again = deliver(want);
  assert.equal(again.status, 0, again.stderr);
  assert.doesNotMatch(again.stdout, /changed:/, "idempotent");
  // a new server is a new managed file: replaced
  const next = guardedKubeconfig(body("https://k8s2.test:6443"));
  assert.match(deliver(next).stdout, /changed: /);
  assert.equal(fs.readFileSync(cfg(), "utf8"), next);
});

test("a kubeconfig the user changed is left alone by deliver and remove, with a warning", () => {
  const managed = guardedKubeconfig(body("https://k8s.test:6443"));
  assert.equal(deliver(managed).status, 0);
  const edited = managed + "# my own context\n";
  assert.equal(u.sh(`printf '%s' "$1" > ~/.kube/config`.replace('"$1"', `'${edited.replace(/'/g, "'\\''")}'`)).code, 0);
  const d = deliver(guardedKubeconfig(body("https://other.test:6443")));
  assert.equal(d.status, 0, d.stderr);
  assert.match(d.stderr, /the user's own .* left alone/);
  assert.equal(fs.readFileSync(cfg(), "utf8"), edited);
  const r = remove();
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /user's own; left alone/);
  assert.equal(fs.readFileSync(cfg(), "utf8"), edited);
  // a file without the header at all (written by the user or kubectl) is the user's too
  fs.writeFileSync(cfg(), "apiVersion: v1\n");
  assert.match(deliver(managed).stderr, /left alone/);
  assert.equal(fs.readFileSync(cfg(), "utf8"), "apiVersion: v1\n");
});

test("remove deletes the managed file only; stdin that is not a managed kubeconfig is refused", () => {
  fs.rmSync(cfg(), { force: true });
  const managed = guardedKubeconfig(body("https://k8s.test:6443"));
  assert.equal(deliver(managed).status, 0);
  const r = remove();
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /removed .*\.kube\/config/);
  assert.equal(fs.existsSync(cfg()), false);
  assert.equal(remove().status, 0, "removing again is fine");
  const bad = deliver("apiVersion: v1\nkind: Config\n");
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /not a managed kubeconfig/);
  assert.equal(fs.existsSync(cfg()), false);
});

test("a symlinked ~/.kube is not followed (root never writes where the user points)", () => {
  fs.rmSync(path.join(u.home, ".kube"), { recursive: true, force: true });
  const elsewhere = tmp("kube-target");
  fs.chmodSync(elsewhere, 0o777);
  assert.equal(u.sh(`ln -s ${elsewhere} ~/.kube`).code, 0);
  const r = deliver(guardedKubeconfig(body("https://k8s.test:6443")));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /symlink; kubeconfig not written/);
  assert.deepEqual(fs.readdirSync(elsewhere), []);
});
