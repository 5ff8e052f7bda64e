/**
 * The lint of `.woodpecker/*.yaml` (`npm run lint:woodpecker`, and part of `npm test`).
 *
 * Woodpecker's own linter first: `woodpecker-cli lint --strict .woodpecker` (3.17.0, from the
 * toolchain; under CI=true a missing binary fails, elsewhere the test says it skipped and why),
 * with broken variants it must refuse. Then every workflow is validated against the JSON
 * schema that linter uses (Woodpecker v3.17.0, draft-07, vendored unchanged in tests/fixtures,
 * and byte-compared with ../shared/woodpecker/schema.json when that exists), with ajv, so the
 * schema part runs without the binary too. On top of the schema, the rules neither can express:
 * - every workflow has a `when` whose every condition names its events;
 * - no `from_secret` reaches a step that can run on a pull_request event (Woodpecker gives
 *   pull requests no secrets; referencing one fails the pipeline at compile time);
 * - every `from_secret` name is documented in the README's CI section;
 * - every image is pinned: a digest, or a tag with a major.minor version (no `latest`); a step
 *   image may be `${WORKSTATIONS_CI_SHELL:-<pinned image>}` (a local-backend server sets it to a
 *   shell), no other variable;
 * - no command's text holds an outcome line (`preview skipped`, `deploy stopped`): Woodpecker
 *   prints each command before running it, so every log would show it;
 * - every step has `commands` (or, for a plugin, `settings`);
 * - every `$` in commands is escaped as `$$` (Woodpecker substitutes variables when compiling);
 * - no command echoes or prints a secret variable to the log;
 * - a workflow that runs `pulumi up` is limited to one at a time (`concurrency: 1`);
 * - the notify step runs after `up`, on success and failure, with `failure: ignore`;
 * - the Pulumi image's version is the @pulumi/pulumi version of package.json;
 * - every step's commands, as the agent's `/bin/sh -e` script, pass shellcheck.
 * Broken variants are generated from the real files and must each fail.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Ajv from "ajv";
import addFormats from "ajv-formats";
import { findWoodpeckerBinary, WOODPECKER_VERSION } from "../../dev/woodpecker";
import { commandsOf, conditions, Doc, loadWorkflows, REPO, Step, stepsOf, unescape, WORKFLOW_DIR } from "../fixtures/woodpecker";
import { tempDir } from "../../dev/tmp";

const VENDORED = path.join(REPO, "tests/fixtures/woodpecker-schema-v3.17.0.json");
const SHARED = path.join(REPO, "..", "shared", "woodpecker", "schema.json");
const schemaText = fs.readFileSync(VENDORED, "utf8");
const schema = JSON.parse(schemaText);
// The upstream schema is not strict-mode clean (e.g. minLength on arrays); Woodpecker's own
// linter is not strict either. Formats ("uri") come from ajv-formats.
const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
const validate = ajv.compile(schema);

const EVENTS: string[] = schema.definitions.event_enum.enum;
const PR_EVENTS = EVENTS.filter((e) => e.startsWith("pull_request"));

export function readmeCiSection(readme: string): string {
  const start = readme.indexOf("\n## CI (Woodpecker)");
  if (start < 0) return "";
  const next = readme.indexOf("\n## ", start + 5);
  return readme.slice(start, next < 0 ? undefined : next);
}

const asList = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);
const eventsOf = (when: unknown): Set<string> => new Set(conditions(when).flatMap((c) => (c.event === undefined ? EVENTS : asList(c.event))));

function secretRefs(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) v.forEach((x) => secretRefs(x, out));
  else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (k === "from_secret") out.push(String(x));
      else secretRefs(x, out);
    }
  }
  return out;
}

function imagesOf(doc: Doc): Array<{ where: string; image: unknown }> {
  const out: Array<{ where: string; image: unknown }> = [];
  for (const s of stepsOf(doc)) out.push({ where: `step ${s.name}`, image: s.image });
  const services = doc.services;
  for (const s of Array.isArray(services) ? services : services && typeof services === "object" ? Object.values(services) : [])
    out.push({ where: `service ${(s as Step).name ?? "?"}`, image: (s as Step).image });
  const clone = doc.clone as Record<string, unknown> | unknown[] | undefined;
  if (Array.isArray(clone)) for (const s of clone) out.push({ where: `clone ${(s as Step).name ?? "?"}`, image: (s as Step).image });
  else if (clone && typeof clone === "object") for (const [k, s] of Object.entries(clone)) out.push({ where: `clone ${k}`, image: (s as Step)?.image });
  return out;
}

/** The variable a step image may use: `${WORKSTATIONS_CI_SHELL:-IMAGE}` (see .woodpecker/*.yaml). */
export const SHELL_VARIABLE = /^\$\{WORKSTATIONS_CI_SHELL:-([^}$]+)\}$/;

/** Why an image reference is not pinned, or undefined. */
export function unpinned(image: unknown): string | undefined {
  if (typeof image !== "string" || !image) return "has no image";
  const shell = SHELL_VARIABLE.exec(image);
  if (shell) return unpinned(shell[1]);
  if (image.includes("$")) return `${image} uses a variable: only \${WORKSTATIONS_CI_SHELL:-<pinned image>} is allowed`;
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return undefined;
  const lastSlash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  if (colon < 0 || colon < lastSlash) return `${image} has no tag (it means :latest)`;
  const tag = image.slice(colon + 1);
  if (tag === "latest") return `${image} is :latest`;
  if (!/\d+\.\d+/.test(tag)) return `${image}: tag ${tag} is not a version (major.minor at least) nor a digest`;
  return undefined;
}

/** Lines a step prints as its outcome; they must not appear in a command's trace. */
export const OUTCOME_PHRASES = ["preview skipped", "deploy stopped"];

/** Every rule beyond the schema; returns one line per problem. */
export function lintWorkflow(name: string, doc: Doc, readme: string, pkg: { dependencies?: Record<string, string> }): string[] {
  const errs: string[] = [];
  const steps = stepsOf(doc);
  if (doc.when === undefined) errs.push(`${name}: no top-level when: the workflow would run on every event, pull requests included`);
  else if (conditions(doc.when).some((c) => c.event === undefined)) errs.push(`${name}: a top-level when condition has no event`);
  const wfEvents = eventsOf(doc.when);
  const ci = readmeCiSection(readme);
  for (const s of steps) {
    const where = `${name}: step ${s.name}`;
    const refs = secretRefs(s);
    const stepEvents = [...eventsOf(s.when)].filter((e) => wfEvents.has(e));
    const pr = stepEvents.filter((e) => PR_EVENTS.includes(e));
    if (refs.length && pr.length) errs.push(`${where}: secret(s) ${refs.join(", ")} on a step that can run on ${pr.join(", ")}`);
    for (const r of refs) if (!ci.includes("`" + r + "`")) errs.push(`${where}: secret ${r} is not documented in the README's "CI (Woodpecker)" section`);
    const cmds = commandsOf(s);
    const plugin = s.settings && typeof s.settings === "object" && Object.keys(s.settings).length > 0;
    if (!cmds.length && !plugin) errs.push(`${where}: neither commands nor plugin settings`);
    for (const c of cmds) {
      try {
        unescape(c);
      } catch (e) {
        errs.push(`${where}: ${(e as Error).message}`);
      }
    }
    const secretVars = Object.entries(s.environment ?? {})
      .filter(([, v]) => v && typeof v === "object" && "from_secret" in (v as object))
      .map(([k]) => k);
    for (const c of cmds)
      for (const line of c.split(/;|&&|\|\||\n/))
        for (const v of secretVars)
          if (new RegExp(`\\$\\$\\{?${v}\\b`).test(line) && /\b(echo|printf|cat|tee)\b/.test(line) && !/\|/.test(line.replace(/\|\|/g, "")))
            errs.push(`${where}: a command prints the secret variable ${v} to the log: ${line.trim()}`);
    for (const c of cmds)
      for (const phrase of OUTCOME_PHRASES)
        if (c.includes(phrase))
          errs.push(`${where}: the command's text holds "${phrase}": Woodpecker prints the command first, so every log of this step would show it`);
    const notify = cmds.some((c) => c.includes("notify-nonadmin-push"));
    if (notify) {
      if (s.failure !== "ignore") errs.push(`${where}: the notify step must have failure: ignore (a Slack failure must not fail the deploy)`);
      if (!conditions(s.when).every((c) => asList(c.status).includes("failure") && asList(c.status).includes("success")))
        errs.push(`${where}: the notify step must run on success and failure (when.status)`);
      const up = steps.findIndex((x) => commandsOf(x).some((c) => /\bpulumi up\b/.test(c)));
      if (up < 0 || steps.indexOf(s) < up) errs.push(`${where}: the notify step must come after the pulumi up step`);
    }
  }
  for (const { where, image } of imagesOf(doc)) {
    const why = unpinned(image);
    if (why) errs.push(`${name}: ${where}: image not pinned: ${why}`);
  }
  if (steps.some((s) => commandsOf(s).some((c) => /\bpulumi up\b/.test(c)))) {
    const c = doc.concurrency as number | { limit?: number } | undefined;
    const limit = typeof c === "number" ? c : c?.limit;
    if (limit !== 1) errs.push(`${name}: runs pulumi up but is not limited to one at a time (concurrency: 1)`);
  }
  const sdk = pkg.dependencies?.["@pulumi/pulumi"];
  for (const { where, image } of imagesOf(doc)) {
    const m = typeof image === "string" ? /pulumi\/pulumi(?:-nodejs)?:(\d+\.\d+\.\d+)/.exec(image) : null;
    if (m && sdk && m[1] !== sdk) errs.push(`${name}: ${where}: Pulumi image ${m[1]} is not the @pulumi/pulumi version ${sdk} of package.json`);
  }
  return errs;
}

export function schemaErrors(name: string, doc: Doc): string[] {
  if (validate(doc)) return [];
  return (validate.errors ?? []).map(
    (e) =>
      `${name}: schema: ${e.instancePath || "/"} ${e.message}${e.params && "additionalProperty" in e.params ? ` (${(e.params as { additionalProperty: string }).additionalProperty})` : ""}`,
  );
}

const README = fs.readFileSync(path.join(REPO, "README.md"), "utf8");
const PKG = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8"));
const workflows = loadWorkflows();
const lintAll = (name: string, doc: Doc) => [...schemaErrors(name, doc), ...lintWorkflow(name, doc, README, PKG)];

test("the vendored schema is Woodpecker's v3.17.0 schema, unchanged", () => {
  assert.match(schema.$schema, /draft-07/);
  if (fs.existsSync(SHARED)) assert.equal(schemaText, fs.readFileSync(SHARED, "utf8"), `${VENDORED} differs from ${SHARED}`);
  assert.match(fs.readFileSync(path.join(REPO, "tests/fixtures/README.md"), "utf8"), /woodpecker-schema-v3\.17\.0\.json.*v3\.17\.0.*Apache/s);
});

test("the workflows are preview and deploy, and both pass the schema and every rule", () => {
  assert.deepEqual([...workflows.keys()].sort(), ["deploy", "preview"]);
  for (const [name, doc] of workflows) assert.deepEqual(lintAll(name, doc), [], name);
});

test("the image rule accepts digests and versioned tags only", () => {
  assert.equal(unpinned("docker.io/library/node@sha256:" + "a".repeat(64)), undefined);
  assert.equal(unpinned("node:20.19-bookworm"), undefined);
  assert.equal(unpinned("registry.local:5000/x/pulumi-nodejs:3.270.0"), undefined);
  for (const bad of ["node", "node:latest", "node:lts", "node:20", "node:bookworm", "registry.local:5000/node"]) assert.ok(unpinned(bad), bad);
  assert.equal(unpinned("${WORKSTATIONS_CI_SHELL:-docker.io/library/node:22.12-bookworm}"), undefined);
  assert.match(unpinned("${WORKSTATIONS_CI_SHELL:-node:latest}") ?? "", /:latest/);
  assert.match(unpinned("${NODE_IMAGE:-node:22.12}") ?? "", /uses a variable/);
  assert.match(unpinned("docker.io/library/node:${TAG}") ?? "", /uses a variable/);
});

type Mutation = { name: string; file: "preview" | "deploy"; expect: RegExp; mutate: (d: Doc) => void };
const step = (d: Doc, n: string) => {
  const s = stepsOf(d).find((x) => x.name === n);
  if (!s) throw new Error(`no step ${n}`);
  return s;
};
const variants: Mutation[] = [
  { name: "unknown top-level key", file: "preview", expect: /schema: \/ must NOT have additional properties \(pipeline\)/, mutate: (d) => (d.pipeline = {}) },
  { name: "unknown step key", file: "deploy", expect: /schema: \/steps\/0/, mutate: (d) => (step(d, "install").enviroment = { A: "1" }) },
  {
    name: "v2-style secrets: on a step",
    file: "deploy",
    expect: /schema: \/steps\/4 must NOT have additional properties \(secrets\)/,
    mutate: (d) => (step(d, "up").secrets = ["pulumi_config_passphrase"]),
  },
  {
    name: "a secret on the pull-request step",
    file: "preview",
    expect: /step preview-pull-request: secret\(s\) pulumi_config_passphrase on a step that can run on pull_request/,
    mutate: (d) => (step(d, "preview-pull-request").environment = { PULUMI_CONFIG_PASSPHRASE: { from_secret: "pulumi_config_passphrase" } }),
  },
  {
    name: "the secret step widened to pull requests",
    file: "preview",
    expect: /step preview: secret\(s\) .* can run on pull_request/,
    mutate: (d) => (step(d, "preview").when = [{ event: ["push", "pull_request"] }]),
  },
  {
    name: "a step with no when in a workflow open to pull requests",
    file: "preview",
    expect: /step preview: secret\(s\)/,
    mutate: (d) => delete step(d, "preview").when,
  },
  { name: "missing top-level when", file: "deploy", expect: /deploy: no top-level when/, mutate: (d) => delete d.when },
  { name: "a when condition without event", file: "deploy", expect: /top-level when condition has no event/, mutate: (d) => (d.when = [{ branch: "master" }]) },
  {
    name: "unpinned image (latest)",
    file: "preview",
    expect: /step install: image not pinned: .*:latest/,
    mutate: (d) => (step(d, "install").image = "node:latest"),
  },
  {
    name: "unpinned image (no tag)",
    file: "deploy",
    expect: /step up: image not pinned: .*no tag/,
    mutate: (d) => (step(d, "up").image = "pulumi/pulumi-nodejs"),
  },
  {
    name: "unpinned clone image",
    file: "deploy",
    expect: /clone git: image not pinned/,
    mutate: (d) => ((d.clone as { git: Step }).git.image = "docker.io/woodpeckerci/plugin-git"),
  },
  {
    name: "a step with neither commands nor settings (image only)",
    file: "preview",
    expect: /step roster-check: neither commands nor plugin settings/,
    mutate: (d) => delete step(d, "roster-check").commands,
  },
  {
    name: "a step with neither commands nor image",
    file: "deploy",
    expect: /schema: \/steps\/2 must have required property 'image'/,
    mutate: (d) => {
      const s = step(d, "roster-check");
      delete s.commands;
      delete s.image;
    },
  },
  // The schema alone accepts this one: commands_step's `if: {properties: {detach: {const: true}}}`
  // holds vacuously when `detach` is absent, so it never requires `commands`.
  {
    name: "commands removed from a step with environment",
    file: "deploy",
    expect: /step up: neither commands nor plugin settings/,
    mutate: (d) => delete step(d, "up").commands,
  },
  {
    name: "an unescaped $ in a command",
    file: "deploy",
    expect: /unescaped \$/,
    mutate: (d) => (step(d, "up").commands as string[]).push('echo "$CI_COMMIT_SHA"'),
  },
  {
    name: "a secret printed to the log",
    file: "deploy",
    expect: /prints the secret variable SLACK_WEBHOOK/,
    mutate: (d) => (step(d, "notify-nonadmin-push").commands as string[]).unshift('echo "$${SLACK_WEBHOOK}"'),
  },
  {
    name: "an undocumented secret",
    file: "deploy",
    expect: /secret not_in_readme is not documented/,
    mutate: (d) => (step(d, "up").environment!.X = { from_secret: "not_in_readme" }),
  },
  { name: "deploy without concurrency", file: "deploy", expect: /not limited to one at a time/, mutate: (d) => delete d.concurrency },
  {
    name: "notify without failure: ignore",
    file: "deploy",
    expect: /must have failure: ignore/,
    mutate: (d) => delete step(d, "notify-nonadmin-push").failure,
  },
  {
    name: "notify only on success",
    file: "deploy",
    expect: /must run on success and failure/,
    mutate: (d) => (step(d, "notify-nonadmin-push").when = [{ event: "push", branch: "master" }]),
  },
  { name: "a bad event name", file: "preview", expect: /schema: \/when/, mutate: (d) => (d.when = [{ event: "pull-request" }]) },
  {
    name: "the skip line written out in the command (its trace shows it in every preview log)",
    file: "preview",
    expect: /step preview: the command's text holds "preview skipped"/,
    mutate: (d) => {
      const cmds = step(d, "preview").commands as string[];
      cmds[0] = cmds[0].replace(/printf 'preview %s: %s\\n' skipped "([^"]*)"/, 'echo "preview skipped: $1"');
      assert.match(cmds[0], /echo "preview skipped: /);
    },
  },
  {
    name: "the stop line written out in the deploy's command",
    file: "deploy",
    expect: /step up: the command's text holds "deploy stopped"/,
    mutate: (d) => {
      const cmds = step(d, "up").commands as string[];
      cmds[0] = cmds[0].replace(/printf 'deploy %s: %s\\n' stopped "([^"]*)"/, 'echo "deploy stopped: $1"');
      assert.match(cmds[0], /echo "deploy stopped: /);
    },
  },
  {
    name: "an image from another variable",
    file: "deploy",
    expect: /step up: image not pinned: .*uses a variable/,
    mutate: (d) => (step(d, "up").image = "${PULUMI_IMAGE:-docker.io/pulumi/pulumi-nodejs:3.270.0}"),
  },
  {
    name: "a Pulumi image out of step with the SDK",
    file: "deploy",
    expect: /Pulumi image 3\.1\.0 is not the @pulumi\/pulumi version/,
    mutate: (d) => (step(d, "up").image = "docker.io/pulumi/pulumi-nodejs:3.1.0"),
  },
];

for (const v of variants) {
  test(`broken variant fails: ${v.name}`, () => {
    const doc = structuredClone(workflows.get(v.file)!);
    v.mutate(doc);
    const errs = lintAll(v.file, doc);
    assert.ok(errs.length > 0, "expected at least one problem");
    assert.ok(
      errs.some((e) => v.expect.test(e)),
      `no problem matched ${v.expect}:\n${errs.join("\n")}`,
    );
  });
}

test("at least six broken variants, covering every kind the issue names", () => {
  assert.ok(variants.length >= 6);
  for (const kind of ["unknown", "secrets:", "pull-request step", "unpinned", "missing top-level when", "neither commands"])
    assert.ok(
      variants.some((v) => v.name.includes(kind)),
      kind,
    );
});

test("every step's commands, as the agent's /bin/sh -e script, pass shellcheck", () => {
  const dir = tempDir("ws-wp-sc-");
  const files: string[] = [];
  for (const [name, doc] of workflows)
    for (const s of stepsOf(doc)) {
      const f = path.join(dir, `${name}.${s.name}.sh`);
      fs.writeFileSync(
        f,
        "#!/bin/sh\nset -e\n" +
          commandsOf(s)
            .map((c) => unescape(c))
            .join("\n") +
          "\n",
      );
      files.push(f);
    }
  const sc = spawnSync("shellcheck", ["-S", "warning", "-s", "sh", ...files], { encoding: "utf8" });
  assert.equal(sc.error, undefined, "shellcheck must be installed (bash dev/setup)");
  assert.equal(sc.status, 0, sc.stdout + sc.stderr);
  fs.rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------
// Woodpecker's own linter, `woodpecker-cli lint --strict`

/** woodpecker-cli, or a skip reason; under CI=true a missing binary fails the test instead. */
function woodpeckerCli(t: { skip: (why: string) => void }): string | undefined {
  const cli = findWoodpeckerBinary("woodpecker-cli");
  if (cli) return cli;
  const why = "woodpecker-cli not found (toolchain or PATH): bash dev/toolchain build woodpecker";
  if (process.env.CI === "true") assert.fail(`${why} (CI=true: a missing prerequisite fails)`);
  t.skip(`SKIPPED (not under CI): ${why}`);
  return undefined;
}

function cliLint(cli: string, target: string): { code: number | null; out: string } {
  const r = spawnSync(cli, ["lint", "--strict", target], {
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: os.tmpdir(), WOODPECKER_DISABLE_UPDATE_CHECK: "true", WOODPECKER_LOG_LEVEL: "error" },
    timeout: 60_000,
  });
  assert.equal(r.error, undefined, String(r.error));
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test(`woodpecker-cli ${WOODPECKER_VERSION} lint --strict accepts .woodpecker/`, (t) => {
  const cli = woodpeckerCli(t);
  if (!cli) return;
  const v = spawnSync(cli, ["--version"], { encoding: "utf8" });
  assert.match(v.stdout, new RegExp(`version ${WOODPECKER_VERSION.replace(/\./g, "\\.")}\\b`), "the linter is the version the schema is from");
  const r = cliLint(cli, WORKFLOW_DIR);
  assert.equal(r.code, 0, r.out);
  for (const name of workflows.keys()) assert.match(r.out, new RegExp(`# ${name}\\.yaml\\n✅ Config is valid`), r.out);
});

test("woodpecker-cli lint --strict refuses broken variants (a warning is an error under --strict)", (t) => {
  const cli = woodpeckerCli(t);
  if (!cli) return;
  const dir = tempDir("ws-wp-cli-");
  const cases: Array<{ name: string; file: string; edit: (text: string) => string; expect: RegExp }> = [
    // Only a warning without --strict (checked below): --strict is what makes it fail.
    {
      name: "v2-style secrets on a step",
      file: "deploy",
      edit: (x) => x.replace("    environment:\n", "    secrets: [vault_token]\n    environment:\n"),
      expect: /Additional property secrets is not allowed/,
    },
    { name: "an unknown top-level key", file: "preview", edit: (x) => `pipeline: {}\n${x}`, expect: /pipeline/ },
    { name: "not YAML", file: "deploy", edit: (x) => x.replace("steps:\n", "steps:\n  - name: [\n"), expect: /yaml|parse/i },
  ];
  for (const c of cases) {
    const f = path.join(dir, `${c.file}.yaml`);
    const text = fs.readFileSync(path.join(WORKFLOW_DIR, `${c.file}.yaml`), "utf8");
    const broken = c.edit(text);
    assert.notEqual(broken, text, `${c.name}: the edit changed nothing`);
    fs.writeFileSync(f, broken);
    const r = cliLint(cli, f);
    assert.notEqual(r.code, 0, `${c.name}: accepted\n${r.out}`);
    assert.match(r.out, c.expect, c.name);
    fs.rmSync(f);
  }
  // The first case is only a warning for the plain lint: --strict is what refuses it.
  fs.writeFileSync(path.join(dir, "deploy.yaml"), cases[0].edit(fs.readFileSync(path.join(WORKFLOW_DIR, "deploy.yaml"), "utf8")));
  const plain = spawnSync(cli, ["lint", path.join(dir, "deploy.yaml")], {
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "", HOME: os.tmpdir(), WOODPECKER_DISABLE_UPDATE_CHECK: "true" },
  });
  assert.equal(plain.status, 0, `${plain.stdout}${plain.stderr}`);
  assert.match(`${plain.stdout}`, /warnings/);
  fs.rmSync(dir, { recursive: true, force: true });
});
