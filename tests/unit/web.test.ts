/**
 * Web access from the roster (issue 22): the SSO identity (`sso`), shown by the access report
 * and the access diff.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as fc from "fast-check";
import * as YAML from "yaml";
import { DEFAULT_PROFILES, planRoster } from "../../components/plan";
import { adminsFile, dispatchJson, injectorMapConf, injectorServerConf, sudoersFile, t3EnvFile, userMapFile } from "../../components/plan/web";
import { T3_FIRST_PORT } from "../../components/hostContract";
import { T3_PORTS_JS } from "../../components/scripts/t3Ports";
import { parseRoster } from "../../components/roster/load";
import { type Captured, readExampleRoster, runProgram, setResourceHook, unsecret } from "../../dev/mocks";
import { KUBE_CONFIG } from "../kube/fixtures";
import { webApplyParams } from "../../components/scripts/web";
import { ed25519Key } from "../../dev/sshkeys";
import { diffPlans, formatDiff } from "../../tools/access-diff";
import { formatReport } from "../../tools/access-report";
import { tempDir } from "../../dev/tmp";

const KEY = readExampleRoster().match(/ssh-ed25519 \S+/)![0];
const roster = (extra = "", admin = "") => `version: 1
users:
  - name: viktor
    uid: 2000
    role: admin
    email: viktor@example.com
    forgejo: viktor
    sshKeys: ["${KEY} viktor@laptop"]
${admin}${extra}`;
const user = (name: string, uid: number, more = "") => `  - {name: ${name}, uid: ${uid}, role: power-user, email: ${name}@x.io, forgejo: ${name}${more}}\n`;
const parse = (text: string) => parseRoster(text, "roster.yaml", { today: () => "2030-01-01" });
const plan = (text: string) => {
  const r = parse(text);
  assert.deepEqual(r.problems, [], "the roster is valid");
  return planRoster(r.roster!);
};
const problems = (text: string) => parse(text).problems.map((p) => `${p.line}:${p.col}: ${p.path}: ${p.message}`);

test("sso defaults to the name; an explicit one is kept", () => {
  const p = plan(roster(user("emo", 2001, ", sso: emo.b") + user("nadia", 2002)));
  assert.deepEqual(
    p.users.map((u) => [u.name, u.sso]),
    [
      ["viktor", "viktor"],
      ["emo", "emo.b"],
      ["nadia", "nadia"],
    ],
  );
});

test("sso: the checker refuses a duplicate (explicit or defaulted, any case), 30 bytes or more, and separators", () => {
  const cases: Array<[string, string, RegExp]> = [
    [
      "another's name",
      roster(user("emo", 2001, ", sso: viktor")),
      /^9:82: users\[1\]\.sso: .*unique SSO identity: "viktor" is already the name .* of users\[0\] \(viktor\)/,
    ],
    ["another's name, other case", roster(user("emo", 2001, ", sso: Viktor")), /users\[1\]\.sso: .*unique SSO identity: "Viktor"/],
    [
      "another's sso",
      roster(user("emo", 2001, ", sso: e") + user("nadia", 2002, ", sso: E")),
      /users\[2\]\.sso: .*unique SSO identity: "E" is already the sso of users\[1\] \(emo\)/,
    ],
    [
      "a name equal to another's sso",
      roster(user("emo", 2001, ", sso: nadia") + user("nadia", 2002)),
      /users\[2\]\.name: .*unique SSO identity: "nadia" .*; set sso/,
    ],
    ["30 bytes", roster(user("emo", 2001, `, sso: ${"e".repeat(30)}`)), /users\[1\]\.sso: .*under 30 bytes .*this one has 30/],
    ["an @", roster(user("emo", 2001, ", sso: emo@corp")), /users\[1\]\.sso: .*no '@'/],
    ["a colon", roster(user("emo", 2001, ", sso: 'emo:x'")), /users\[1\]\.sso: .*SSO username/],
    ["an equals sign", roster(user("emo", 2001, ", sso: 'emo=x'")), /users\[1\]\.sso: .*SSO username/],
    ["a leading dot", roster(user("emo", 2001, ", sso: .emo")), /users\[1\]\.sso: .*SSO username/],
    ["a long name without sso", roster(user("e".repeat(30), 2001)), /users\[1\]\.name: .*explicit sso for a name of 30 bytes/],
  ];
  for (const [what, text, re] of cases) {
    const got = problems(text);
    assert.ok(
      got.some((l) => re.test(l)),
      `${what}: expected a problem matching ${re}, got:\n${got.join("\n")}`,
    );
  }
  // At the limits: 29 bytes, and a 30-byte name with a short sso, are accepted.
  plan(roster(user("emo", 2001, `, sso: ${"e".repeat(29)}`)));
  plan(roster(user("e".repeat(30), 2001, ", sso: elong")));
  plan(roster(user("emo", 2001, ", sso: Emo_B-2.x")));
});

test("sso: an offboarded entry keeps its identity reserved", () => {
  const got = problems(roster(user("olga", 2001, ", state: offboarded") + user("emo", 2002, ", sso: olga")));
  assert.ok(
    got.some((l) => /users\[2\]\.sso: .*"olga" is already/.test(l)),
    got.join("\n"),
  );
});

test("the access report shows each user's SSO identity; the diff flags a change of it", () => {
  const base = plan(roster(user("emo", 2001) + user("sam", 2002, ", state: suspended")));
  const report = formatReport(base);
  assert.match(report, /^emo \(uid 2001.*\n(?: .*\n)*? {2}web: {8}terminal as emo, T3 Code server$/m);
  assert.match(report, /^ {2}web: {8}none \(suspended; SSO identity sam maps to nothing\)$/m);
  const head = plan(roster(user("emo", 2001, ", sso: emil") + user("sam", 2002, ", state: suspended")));
  const diff = formatDiff(diffPlans(base, head));
  assert.match(diff, /^emo \(uid 2001\)/m);
  assert.match(diff, /^ {2}! SSO identity emo → emil: whoever logs in to authentik as emil reaches emo's web terminal/m);
  assert.equal(formatDiff(diffPlans(base, base)), "", "no change, no line");
  // A base planned by older code has no sso: it was the name.
  const old = { ...base, users: base.users.map((u) => ({ ...u, sso: undefined as unknown as string })) };
  assert.doesNotMatch(formatDiff(diffPlans(old, base)), /SSO identity/);
});

// ---- the web plan and its files (property tests over generated rosters) ----

const KEYS = Array.from({ length: 24 }, (_, i) => ed25519Key(`w${i}@gen`));
const webRosterArb = fc
  .array(
    fc.record({
      role: fc.constantFrom("admin", "power-user", "namespace-owner" as const),
      state: fc.constantFrom("active", "active", "suspended", "offboarded" as const),
      sso: fc.option(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,12}$/), { nil: undefined }),
      t3: fc.option(fc.boolean(), { nil: undefined }),
    }),
    { minLength: 1, maxLength: 24 },
  )
  .map((entries) => {
    const taken = new Set<string>();
    const users = entries.map((e, i) => {
      // an explicit sso that no other entry's sso or name takes (case-insensitively)
      const sso = e.sso && !taken.has(e.sso.toLowerCase()) && !/^w[0-9]+$/i.test(e.sso) ? e.sso : undefined;
      taken.add((sso ?? `w${i}`).toLowerCase());
      return {
        name: `w${i}`,
        uid: 3000 + i,
        role: i === 0 ? "admin" : e.role,
        email: `w${i}@example.com`,
        forgejo: `w${i}`,
        ...(sso ? { sso } : {}),
        sshKeys: [KEYS[i]],
        namespaces: (i === 0 ? "admin" : e.role) === "namespace-owner" ? [`ns-w${i}`] : [],
        overrides: e.t3 === undefined ? {} : { t3: e.t3 },
        state: i === 0 ? "active" : e.state,
      };
    });
    return { version: 1, users };
  });

test("property: the web plan holds exactly the active users, and every file says so", () => {
  fc.assert(
    fc.property(webRosterArb, (doc) => {
      const p = plan(YAML.stringify(doc));
      const active = doc.users.filter((u) => u.state === "active");
      const ssoOfU = (u: (typeof doc.users)[number]) => (u as { sso?: string }).sso ?? u.name;
      const t3On = (u: (typeof doc.users)[number]) => (u.overrides as { t3?: boolean }).t3 ?? DEFAULT_PROFILES[u.role as "admin"].t3;
      const sortBy = <T>(xs: T[], k: (x: T) => string) => [...xs].sort((a, b) => (k(a) < k(b) ? -1 : k(a) > k(b) ? 1 : 0));
      assert.deepEqual(
        p.web.terminal,
        sortBy(
          active.map((u) => ({ sso: ssoOfU(u), user: u.name })),
          (i) => i.sso,
        ),
      );
      assert.deepEqual(
        p.web.admins,
        active
          .filter((u) => u.role === "admin")
          .map((u) => u.name)
          .sort(),
      );
      assert.deepEqual(
        p.web.t3,
        sortBy(
          active.filter(t3On).map((u) => ({ sso: ssoOfU(u), user: u.name })),
          (i) => i.sso,
        ),
      );
      // The files, parsed back the way their readers do.
      const map = userMapFile(p.web)
        .split("\n")
        .filter((l) => l && !l.startsWith("#"))
        .map((l) => l.split("="));
      assert.deepEqual(
        map,
        p.web.terminal.map((i) => [i.sso, i.user]),
      );
      assert.equal(new Set(map.map(([s]) => s.toLowerCase())).size, map.length, "identities are unique");
      assert.deepEqual(adminsFile(p.web).split("\n").filter(Boolean), p.web.admins);
      const rules = sudoersFile(p.web)
        .split("\n")
        .filter((l) => l && !l.startsWith("#"));
      assert.deepEqual(rules, active.map((u) => `ttyd ALL=(${u.name}) NOPASSWD: /usr/bin/tmux, /usr/local/lib/workstations/ws-term-session`).sort());
      assert.doesNotMatch(sudoersFile(p.web), /\(ALL|\(root|ALL\)/, "never (ALL), never root");
      const ports = Object.fromEntries(p.web.t3.map((i, k) => [i.user, 3773 + k]));
      const dispatch = JSON.parse(dispatchJson(p.web, ports)) as Record<string, { os_user: string; port: number }>;
      assert.deepEqual(
        Object.entries(dispatch)
          .map(([s, v]) => [s, v.os_user, v.port])
          .sort(),
        p.web.t3.map((i) => [i.sso, i.user, ports[i.user]]).sort(),
      );
      assert.deepEqual(
        [...dispatchJson(p.web, ports).matchAll(/"([^"]+)":\{/g)].map((m) => m[1]),
        p.web.t3.map((i) => i.sso),
        "keys in the plan's order",
      );
      assert.doesNotMatch(dispatchJson(p.web, ports), /\s(?!$)/, "compact");
      // Nobody suspended or offboarded is in any file.
      const all = [userMapFile(p.web), adminsFile(p.web), sudoersFile(p.web), dispatchJson(p.web, ports)].join("\n");
      // (a whole name: an active user's sso may contain another's name, as "w1-" holds "w1")
      for (const u of doc.users.filter((x) => x.state !== "active"))
        assert.doesNotMatch(all, new RegExp(`(?<![\\w.-])${u.name}(?![\\w.-])`), `${u.name} (${u.state})`);
      // The suspended hold no web grant; planning is deterministic.
      for (const u of p.users) assert.equal(u.grants.web === null, u.state !== "active");
      assert.deepEqual(planRoster(parse(YAML.stringify(doc)).roster!).web, p.web);
    }),
    { numRuns: 120 },
  );
});

test("visudo -c accepts every generated sudoers file (the example roster, nobody, and generated rosters)", (t) => {
  if (spawnSync("visudo", ["--version"]).error) {
    assert.notEqual(process.env.CI, "true", "visudo is missing (apt-get install sudo)");
    return t.skip("visudo is not installed");
  }
  const dir = tempDir("ws-sudoers-");
  const check = (text: string) => {
    const f = path.join(dir, "ttyd-users");
    fs.writeFileSync(f, text, { mode: 0o440 });
    const r = spawnSync("visudo", ["-c", "-f", f], { encoding: "utf8" });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}\n${text}`);
  };
  check(sudoersFile(planRoster(parse(readExampleRoster()).roster!).web));
  check(sudoersFile({ terminal: [], admins: [], t3: [], dashboard: [] }));
  fc.assert(
    fc.property(webRosterArb, (doc) => check(sudoersFile(plan(YAML.stringify(doc)).web))),
    { numRuns: 25 },
  );
  fs.rmSync(dir, { recursive: true });
});

// ---- sticky T3 ports: the host's allocator (components/scripts/t3Ports.ts), run as the verb runs it ----

/** Runs the allocator as web-apply does (node -e, the ledger, the T3 dir, the first port, the users). */
function allocate(ledger: string, dir: string, users: string[]): { ports: Record<string, number>; out: string; code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ["-e", T3_PORTS_JS, "--", ledger, dir, String(T3_FIRST_PORT), ...users], { encoding: "utf8" });
  const ports: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/^port (\S+) (\d+)$/gm)) ports[m[1]] = Number(m[2]);
  return { ports, out: r.stdout, code: r.status, stderr: r.stderr };
}

/** What web-apply then writes: one env file per T3 user (others removed) and dispatch.json. */
function writeT3Files(dir: string, users: string[], ports: Record<string, number>): void {
  for (const f of fs.readdirSync(dir)) if (f.endsWith(".env") && !users.includes(f.slice(0, -4))) fs.rmSync(path.join(dir, f));
  for (const u of users) fs.writeFileSync(path.join(dir, `${u}.env`), t3EnvFile(ports[u]));
  const web = { terminal: [], admins: [], dashboard: [], t3: users.map((u) => ({ sso: `sso-${u}`, user: u })) };
  fs.writeFileSync(path.join(dir, "dispatch.json"), dispatchJson(web, ports));
}

const POOL = ["ann", "bob", "cy", "dee", "eve", "fox"];
const stepArb = fc.record({
  wanted: fc.subarray(POOL),
  // a hand-made file before the run: an env file or a dispatch.json entry, with any port
  hand: fc.option(
    fc.record({
      kind: fc.constantFrom("env", "dispatch" as const),
      user: fc.constantFrom(...POOL),
      port: fc.oneof(fc.integer({ min: 3773, max: 3780 }), fc.integer({ min: 5000, max: 5003 })),
    }),
    { nil: undefined },
  ),
});

test("property: T3 ports are sticky, never reused by another user, read back from the host's files, new ones from 3773 up", () => {
  fc.assert(
    fc.property(fc.array(stepArb, { minLength: 1, maxLength: 7 }), (steps) => {
      const root = tempDir("ws-t3p-");
      const dir = path.join(root, "t3-serve");
      const ledger = path.join(root, "t3-ports");
      fs.mkdirSync(dir);
      const owner = new Map<number, string>();
      const portOf = new Map<string, number>();
      const handPorts = new Set<number>();
      try {
        for (const s of steps) {
          if (s.hand) {
            handPorts.add(s.hand.port);
            if (s.hand.kind === "env") fs.writeFileSync(path.join(dir, `${s.hand.user}.env`), `T3_PORT=${s.hand.port}\n`);
            else fs.writeFileSync(path.join(dir, "dispatch.json"), JSON.stringify({ [`x-${s.hand.user}`]: { os_user: s.hand.user, port: s.hand.port } }));
          }
          const r = allocate(ledger, dir, s.wanted);
          assert.equal(r.code, 0, r.stderr);
          assert.deepEqual(Object.keys(r.ports).sort(), [...s.wanted].sort(), "a port for every T3 user");
          assert.equal(new Set(Object.values(r.ports)).size, s.wanted.length, "no two users share a port");
          for (const [u, p] of Object.entries(r.ports)) {
            if (portOf.has(u)) assert.equal(p, portOf.get(u), `${u} keeps port ${portOf.get(u)} (sticky)`);
            if (owner.has(p)) assert.equal(owner.get(p), u, `port ${p} was ${owner.get(p)}'s: never another user's`);
            assert.ok(p >= T3_FIRST_PORT || handPorts.has(p), `port ${p} is from ${T3_FIRST_PORT} up, or read back`);
            portOf.set(u, p);
            owner.set(p, u);
          }
          // The ledger holds every port handed out, to whom, each once.
          const lines = fs.existsSync(ledger) ? fs.readFileSync(ledger, "utf8").trim().split("\n").filter(Boolean) : [];
          const led = new Map(lines.map((l) => [Number(l.split(" ")[0]), l.split(" ")[1]]));
          assert.equal(led.size, lines.length);
          for (const [p, u] of owner) assert.equal(led.get(p), u, `the ledger says ${p} is ${u}'s`);
          writeT3Files(dir, s.wanted, r.ports);
        }
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    }),
    { numRuns: 25 },
  );
});

test("T3 ports: read back from the team's files (a conflict goes to the first claim), a listening port is skipped, a bad ledger stops", async () => {
  const root = tempDir("ws-t3p-");
  const dir = path.join(root, "t3-serve");
  const ledger = path.join(root, "t3-ports");
  fs.mkdirSync(dir);
  // The team's hand-made files: ann 3775 and bob 3775 (cross-wired), cy in dispatch.json only.
  fs.writeFileSync(path.join(dir, "ann.env"), "T3_PORT=3775\n");
  fs.writeFileSync(path.join(dir, "bob.env"), "T3_PORT=3775\n");
  fs.writeFileSync(path.join(dir, "dispatch.json"), '{"cy.x":{"os_user":"cy","port":3790},"ann":{"os_user":"ann","port":3775}}');
  const r = allocate(ledger, dir, ["ann", "bob", "cy", "dee"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.ports.ann, 3775, "read back");
  assert.equal(r.ports.cy, 3790, "read back from dispatch.json");
  assert.notEqual(r.ports.bob, 3775, "bob's claim on ann's port is refused");
  assert.match(r.out, /warning: port 3775 of bob .* is ann's; bob gets another/);
  assert.deepEqual(new Set(Object.values(r.ports)).size, 4);
  assert.ok(r.ports.bob >= 3773 && r.ports.dee >= 3773);
  // A port something listens on is never handed out anew.
  const free = allocate(ledger, dir, ["ann", "bob", "cy", "dee", "eve"]).ports.eve;
  const ledgerBefore = fs.readFileSync(ledger, "utf8");
  fs.writeFileSync(ledger, ledgerBefore.replace(new RegExp(`^${free} eve\\n`, "m"), ""));
  const server = require("node:net").createServer();
  await new Promise<void>((res) => server.listen(free, "127.0.0.1", res));
  try {
    const again = allocate(ledger, dir, ["ann", "bob", "cy", "dee", "eve"]);
    assert.notEqual(again.ports.eve, free, `${free} is listened on`);
  } finally {
    server.close();
  }
  // A ledger that is not '<port> <user>' lines stops it, naming the line; nothing is guessed.
  fs.writeFileSync(ledger, "3773 ann\nnonsense\n");
  const bad = allocate(ledger, dir, ["ann"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /t3-ports:2: not '<port> <user>': "nonsense"/);
  fs.writeFileSync(ledger, "3773 ann\n3773 bob\n");
  assert.match(allocate(ledger, dir, ["ann"]).stderr, /port 3773 is listed twice \(ann, bob\)/);
  fs.rmSync(root, { recursive: true, force: true });
});

// ---- the program: one host-level WebAccess resource, whose input is the web plan ----

test("program: one WebAccess resource runs web-apply with the plan's files; suspending a user changes its input", async () => {
  const find = (rs: Captured[]) => {
    const r = rs.filter((x) => x.type === "command:remote:Command" && x.name === "web-files");
    assert.equal(r.length, 1, "one web-files command");
    return String(unsecret(r[0].inputs.create));
  };
  const { resources, program } = await runProgram({ roster: readExampleRoster() });
  assert.ok(resources.some((r) => r.type === "workstations:index:WebAccess" && r.name === "web"));
  const create = find(resources);
  const params = webApplyParams(program.plan.web);
  for (const [k, v] of Object.entries(params)) assert.ok(create.includes(`'${k}=${typeof v === "boolean" ? Number(v) : v}'`), `web-apply gets ${k}`);
  assert.ok(create.includes("'TERMINAL=0'"), "the web terminal is off by default");
  const on = find((await runProgram({ roster: readExampleRoster(), config: { webTerminal: "true" } })).resources);
  assert.equal(on, create.replace("'TERMINAL=0'", "'TERMINAL=1'"), "workstations:webTerminal turns it on, nothing else changes");
  await assert.rejects(runProgram({ roster: readExampleRoster(), config: { webTerminal: "yes" } }), /webTerminal/);
  assert.equal(params.T3, "emo=emo nadia=nadia viktor=viktor");
  const doc = YAML.parse(readExampleRoster());
  doc.users.find((u: { name: string }) => u.name === "emo").state = "suspended";
  const suspended = find((await runProgram({ roster: YAML.stringify(doc) })).resources);
  assert.notEqual(suspended, create, "the web plan changed, so the command runs again in the same up");
  assert.doesNotMatch(Buffer.from(/'USER_MAP_B64=([^']*)'/.exec(suspended)![1], "base64").toString(), /emo/);
  // Only the web plan is its input: a change elsewhere (a new ssh key) leaves it alone.
  doc.users.find((u: { name: string }) => u.name === "emo").state = "active";
  doc.users.find((u: { name: string }) => u.name === "nadia").sshKeys = [ed25519Key("nadia@new")];
  assert.equal(find((await runProgram({ roster: YAML.stringify(doc) })).resources), create);
});

// ---- the dashboard's token injector (item 5), under mocks ----

const DASH = { ...KUBE_CONFIG, dashboardNamespace: "kubernetes-dashboard" };
/** Token Secrets get `data.token` = base64("tok-<resource name>"), as the tokens controller would fill them. */
const tokenHook = async (type: string, name: string, inputs: Record<string, any>) =>
  type === "kubernetes:core/v1:Secret" && inputs.type === "kubernetes.io/service-account-token"
    ? { data: { token: Buffer.from(`tok-${name}`).toString("base64") } }
    : undefined;

test("dashboard injector: the map Secret holds exactly the active namespace-owners' and admins' tokens; the server ConfigMap reads it", async () => {
  setResourceHook(tokenHook);
  try {
    const byName = (rs: Captured[], n: string) => rs.find((r) => r.name === n);
    const { resources, program } = await runProgram({ roster: readExampleRoster(), config: DASH });
    assert.deepEqual(
      program.plan.web.dashboard,
      [
        { sso: "nadia", user: "nadia", token: { kind: "namespace", namespace: "nadia-apps" } },
        { sso: "viktor", user: "viktor", token: { kind: "admin" } },
      ],
      "emo (power-user) and sam (suspended) get nothing",
    );
    const map = unsecret(byName(resources, "dashboard-injector-map")!.inputs);
    assert.equal(map.metadata.namespace, "kubernetes-dashboard");
    assert.equal(map.type, "Opaque");
    assert.equal(
      map.stringData["map.conf"],
      injectorMapConf([
        { sso: "nadia", token: "tok-nadia-dashboard-token-nadia-apps" },
        { sso: "viktor", token: "tok-dashboard-injector-admin-token" },
      ]),
    );
    assert.match(
      map.stringData["map.conf"],
      /^map \$http_x_authentik_username \$workstations_dashboard_authorization \{\n {4}default "";\n {4}"nadia" "Bearer tok-nadia-dashboard-token-nadia-apps";\n {4}"viktor" "Bearer tok-dashboard-injector-admin-token";\n\}$/m,
    );
    const server = unsecret(byName(resources, "dashboard-injector-server")!.inputs);
    assert.equal(
      server.data["injector.conf"],
      injectorServerConf({ upstream: "https://kubernetes-dashboard-kong-proxy.kubernetes-dashboard.svc.cluster.local:443" }),
    );
    assert.match(server.data["injector.conf"], /include \/etc\/nginx\/workstations-injector\/map\.conf;/);
    assert.match(server.data["injector.conf"], /proxy_set_header Authorization \$workstations_dashboard_authorization;/);
    const admin = unsecret(byName(resources, "dashboard-injector-admin-binding")!.inputs);
    assert.deepEqual(
      [admin.roleRef.name, admin.subjects[0].name, admin.subjects[0].namespace],
      ["cluster-admin", "workstations-dashboard-admin", "kubernetes-dashboard"],
    );
    // Suspending nadia takes her out of the map in the same program (her token Secret goes too).
    const doc = YAML.parse(readExampleRoster());
    doc.users.find((u: { name: string }) => u.name === "nadia").state = "suspended";
    const after = (await runProgram({ roster: YAML.stringify(doc), config: DASH })).resources;
    assert.doesNotMatch(unsecret(byName(after, "dashboard-injector-map")!.inputs).stringData["map.conf"], /nadia/);
    assert.equal(byName(after, "nadia-dashboard-token-nadia-apps"), undefined);
    // Off without the namespace key; the key without Kubernetes is refused in one line.
    assert.equal(byName((await runProgram({ roster: readExampleRoster(), config: KUBE_CONFIG })).resources, "dashboard-injector-map"), undefined);
    await assert.rejects(
      runProgram({ roster: readExampleRoster(), config: { dashboardNamespace: "kubernetes-dashboard" } }),
      /needs Kubernetes.*workstations:kubeApiServer/,
    );
  } finally {
    setResourceHook(undefined);
  }
});

test("dashboard injector map: a token not filled yet, or anything that is not a token, is left out (never an empty bearer)", () => {
  const conf = injectorMapConf([
    { sso: "nadia", token: "" },
    { sso: "olga", token: 'x"; evil' },
    { sso: "viktor", token: "eyJhbGciOi.J9-_x" },
  ]);
  assert.doesNotMatch(conf, /nadia|olga|evil/);
  assert.match(conf, /"viktor" "Bearer eyJhbGciOi\.J9-_x";/);
});
