/**
 * Runs a generated remote command on this machine, as root, the way the command provider
 * runs it over ssh: a self-contained `remoteScript`, or a host-library call, which runs this
 * program's library from a private copy (never installed into this machine's /usr/local/lib).
 */
import { spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { hostLibrary } from "../components/scripts/hostLib";
import { unwrapScript } from "../components/scripts/shell";
import { tempDir } from "./tmp";

let libCopy = "";

export function runRemote(cmd: string, input = ""): SpawnSyncReturns<string> {
  const lib = hostLibrary();
  if (!libCopy || !libCopy.endsWith(path.basename(lib.path))) {
    libCopy = path.join(tempDir("ws-lib-"), path.basename(lib.path));
    fs.writeFileSync(libCopy, lib.content, { mode: 0o755 });
  }
  const script = cmd.startsWith(lib.path + " ") ? libCopy + cmd.slice(lib.path.length) : unwrapScript(cmd);
  return spawnSync("bash", ["-c", script], { input, encoding: "utf8" });
}
