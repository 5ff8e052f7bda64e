/**
 * dev/toolchain takes the parts the module proxy refuses (the command and vault plugins,
 * Woodpecker) from release tarballs beside a SHA256SUMS file: one whose digest does not match
 * is refused in one line naming it, and nothing is installed.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { tempDir } from "../../dev/tmp";

const REPO = path.resolve(__dirname, "../..");

function tamperedDir(file: string): string {
  const dir = tempDir("ws-tc-");
  fs.writeFileSync(path.join(dir, file), "not the release tarball\n");
  const other = crypto.createHash("sha256").update("the release tarball\n").digest("hex");
  fs.writeFileSync(path.join(dir, "SHA256SUMS"), `${other}  ${file}\n`);
  return dir;
}

for (const [part, file, envKey] of [
  ["command", "pulumi-resource-command-v1.2.1-linux-amd64.tar.gz", "WORKSTATIONS_PLUGIN_DIR"],
  ["vault-provider", "pulumi-resource-vault-v7.8.0-linux-amd64.tar.gz", "WORKSTATIONS_PLUGIN_DIR"],
  ["woodpecker", "woodpecker-3.17.0-linux-amd64.tar.xz", "WORKSTATIONS_WOODPECKER_DIR"],
] as const)
  test(`a ${part} tarball whose checksum does not match is refused in one line naming it`, () => {
    const dir = tamperedDir(file);
    const cache = tempDir("ws-tc-cache-");
    const r = spawnSync("bash", ["dev/toolchain", "build", part], {
      cwd: REPO,
      encoding: "utf8",
      env: { ...process.env, WORKSTATIONS_CACHE: cache, [envKey]: dir },
      timeout: 120_000,
    });
    assert.notEqual(r.status, 0, "the build must fail");
    const log = fs.readFileSync(path.join(cache, "toolchain/logs", `${part}.log`), "utf8");
    const refused = log.split("\n").filter((l) => l.includes("refused"));
    assert.equal(refused.length, 1, log);
    assert.match(refused[0], new RegExp(`${path.join(dir, file).replace(/[.]/g, "\\.")}: refused: sha256 [0-9a-f]{64} does not match SHA256SUMS`));
    assert.match(r.stderr, /refused: sha256/, "the build's own output shows the line");
    assert.equal(
      fs.existsSync(
        path.join(cache, "toolchain/bin", part === "woodpecker" ? "woodpecker-cli" : `pulumi-resource-${part === "command" ? "command" : "vault"}`),
      ),
      false,
    );
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(cache, { recursive: true, force: true });
  });
