/**
 * The real Pulumi engine running tests/kube/engine-program.ts (the program's Kubernetes part)
 * against a real API server, in a throwaway project with a file backend: shared by
 * engine.test.ts and adopt.test.ts.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { KubeServer } from "../../dev/services";
import { kubeSkip } from "./lib";
import { tempDir, withPrivateTmp } from "../../dev/tmp";

const REPO = path.resolve(__dirname, "../..");

/** The toolchain's environment (pulumi on PATH, PULUMI_HOME with the kubernetes plugin). */
export function toolchainEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const line of execFileSync("bash", [path.join(REPO, "dev/toolchain"), "env"], { encoding: "utf8" }).split("\n")) {
    const m = /^export ([A-Z_]+)="(.*)"$/.exec(line.trim());
    if (m) env[m[1]] = m[2].replace(/\$PATH/g, process.env.PATH ?? "");
  }
  return env;
}

/** undefined when the suite can run; a skip reason otherwise (under CI=true never: the test then fails). */
export function engineSkip(env: NodeJS.ProcessEnv): string | undefined {
  const pluginDir = path.join(env.PULUMI_HOME ?? "", "plugins");
  const havePlugin = fs.existsSync(pluginDir) && fs.readdirSync(pluginDir).some((d) => /^resource-kubernetes-v/.test(d));
  const havePulumi = fs.existsSync(path.join(env.WORKSTATIONS_TOOLCHAIN_BIN ?? "", "pulumi"));
  return (
    kubeSkip() ??
    (havePlugin && havePulumi
      ? undefined
      : process.env.CI === "true"
        ? undefined
        : "SKIPPED (not under CI): the pulumi CLI or the kubernetes resource plugin is missing: bash dev/toolchain build pulumi kubernetes-provider")
  );
}

export class KubeEngineStack {
  readonly work = tempDir("ws-kube-engine-project-");
  readonly stateDir = path.join(this.work, ".state");
  readonly passphrase = crypto.randomBytes(16).toString("hex");

  constructor(
    readonly env: NodeJS.ProcessEnv,
    readonly stack = "kube",
  ) {}

  /** Runs the pulumi CLI in the project; throws with its output unless it exits 0 (or `ok: false`). */
  pulumi(args: string[], o: { ok?: boolean } = {}): { code: number; out: string } {
    const r = spawnSync("pulumi", ["--non-interactive", ...args], {
      cwd: this.work,
      encoding: "utf8",
      timeout: 600_000,
      env: this.backendEnv(),
    });
    const out = `${r.stdout}${r.stderr}${r.error ? r.error.message : ""}`;
    if ((o.ok ?? true) && r.status !== 0) throw new Error(`pulumi ${args.join(" ")} failed (${r.status}):\n${out.slice(-6000)}`);
    return { code: r.status ?? -1, out };
  }

  backendEnv(): NodeJS.ProcessEnv {
    return withPrivateTmp({ ...this.env, PULUMI_BACKEND_URL: `file://${this.stateDir}`, PULUMI_CONFIG_PASSPHRASE: this.passphrase }, this.work);
  }

  writeRoster(text: string): void {
    fs.writeFileSync(path.join(this.work, "roster.yaml"), text);
  }

  up(): string {
    return this.pulumi(["up", "--yes", "--skip-preview", "--stack", this.stack]).out;
  }

  /** A no-op up: fails when anything would change. */
  upNoChanges(): string {
    return this.pulumi(["up", "--yes", "--expect-no-changes", "--stack", this.stack]).out;
  }

  /** The `dashboardTokens` stack output: "user/namespace" -> token. */
  tokens(): Record<string, string> {
    return JSON.parse(
      this.pulumi(["stack", "output", "dashboardTokens", "--show-secrets", "--json", "--stack", this.stack])
        .out.trim()
        .split("\n")
        .filter((l) => !l.startsWith("warning"))
        .join("\n"),
    );
  }

  /** The outputs the state holds for the resource named `name` (`pulumi stack export`). */
  outputsOf(name: string): any {
    const r = spawnSync("pulumi", ["--non-interactive", "stack", "export", "--stack", this.stack], {
      cwd: this.work,
      encoding: "utf8",
      maxBuffer: 256 * 1024 * 1024,
      env: this.backendEnv(),
    });
    if (r.status !== 0) throw new Error(`pulumi stack export failed (${r.status}): ${r.stderr}`);
    const found = JSON.parse(r.stdout).deployment.resources.filter((x: { urn: string }) => x.urn.endsWith(`::${name}`));
    if (found.length !== 1) throw new Error(`${found.length} resources named ${name} in the state, not 1`);
    return found[0].outputs;
  }

  /** Runs tests/kube/engine-program.ts of the project in `repo` (this one's by default; an older release's, unpacked with node_modules). */
  useProgram(repo = REPO): void {
    fs.writeFileSync(
      path.join(this.work, "index.js"),
      `require("ts-node").register({ transpileOnly: true, project: ${JSON.stringify(path.join(repo, "tsconfig.json"))} });\nmodule.exports = require(${JSON.stringify(path.join(repo, "tests/kube/engine-program.ts"))}).main();\n`,
    );
  }

  /** The project, the stack and its config for `kube`, with `roster` as the roster. */
  init(kube: KubeServer, roster: string): void {
    fs.mkdirSync(this.stateDir);
    fs.symlinkSync(path.join(REPO, "node_modules"), path.join(this.work, "node_modules"));
    fs.writeFileSync(path.join(this.work, "Pulumi.yaml"), "name: workstations-kube-e2e\nruntime:\n  name: nodejs\n  options:\n    typescript: false\n");
    fs.writeFileSync(path.join(this.work, "package.json"), JSON.stringify({ name: "workstations-kube-e2e", version: "0.0.0", main: "index.js" }));
    this.useProgram();
    this.writeRoster(roster);
    this.pulumi(["stack", "init", this.stack]);
    const set = (k: string, v: string, secret = false) =>
      this.pulumi(["config", "set", "--stack", this.stack, ...(secret ? ["--secret"] : []), `workstations:${k}`, "--", v]);
    set("roster", path.join(this.work, "roster.yaml"));
    set("kubeApiServer", kube.server);
    set("kubeCaCert", kube.caCert);
    set("kubeOidcIssuer", kube.oidc.issuer);
    set("kubeOidcClientId", kube.clientId);
    set("kubeconfig", fs.readFileSync(kube.adminKubeconfig, "utf8"), true);
  }
}
