/**
 * Puts the offline toolchain on PATH (what `dev/toolchain env` prints) and checks
 * that what the engine needs to run this program is there: the CLI, the nodejs language
 * host, the command and vault resource plugins, and a Vault server. Throws, naming what is
 * missing and how to build it. Used by the sandbox and the engine e2e suite.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");

export function loadToolchainEnv(): void {
  const out = execFileSync("bash", [path.join(ROOT, "dev/toolchain"), "env"], { encoding: "utf8" });
  for (const line of out.split("\n")) {
    const m = /^export ([A-Z_]+)="(.*)"$/.exec(line.trim());
    if (m) process.env[m[1]] = m[2].replace(/\$PATH/g, process.env.PATH ?? "");
  }
  process.env.PATH = `${process.env.PATH}:${path.join(ROOT, "node_modules/.bin")}`;
  const have = (bin: string) => (process.env.PATH ?? "").split(":").some((d) => d && fs.existsSync(path.join(d, bin)));
  const plugins = path.join(process.env.PULUMI_HOME ?? path.join(process.env.HOME ?? "", ".pulumi"), "plugins");
  const plugin = (p: string) => have(`pulumi-resource-${p}`) || (fs.existsSync(plugins) && fs.readdirSync(plugins).some((d) => d.startsWith(`resource-${p}-`)));
  const missing = [
    ...["pulumi", "pulumi-language-nodejs"].filter((b) => !have(b)),
    ...["command", "vault"].filter((p) => !plugin(p)).map((p) => `pulumi-resource-${p}`),
    ...(have("bao") || have("vault") ? [] : ["bao|vault"]),
  ];
  if (missing.length)
    throw new Error(
      `the engine needs the offline toolchain; missing: ${missing.join(", ")}. ` +
        "Build it with: bash dev/toolchain build (why a part is missing: bash dev/toolchain status). " +
        "On a machine with internet, `npm install pulumi` provides the CLI and the engine downloads the plugins.",
    );
}
