// Command line for the test hosts (dev/testhost/testhost.ts): nspawn, or the VM with
// WORKSTATIONS_TESTHOST=vm.
//
//   npm run testhost -- up [name]            create + boot; prints {name, port, dir, privateKeyPath, hostKey}
//   npm run testhost -- down [name]          kill and remove
//   npm run testhost -- ssh [name] -- CMD..  run CMD (one command string) as root; stdin is piped through
//   npm run testhost -- reboot [name]        poweroff + boot
//   npm run testhost -- poweroff [name]      clean poweroff (the host stays, `boot` starts it again)
//   npm run testhost -- boot [name]          boot a powered-off host
//   npm run testhost -- list                 hosts known to the CLI
//   npm run testhost -- rootfs               build (or find) the cached rootfs and print its path
//   npm run testhost -- image                build (or find) the cached VM image and print its path
//
// Hosts made by `up` are persistent: they outlive this process and are never reaped as
// stale. Their state is in ${WORKSTATIONS_CACHE:-~/.cache/workstations}/testhost-cli/<name>.json.
import * as fs from "node:fs";
import * as path from "node:path";

import { boot, cacheDir, createHost, destroyHost, ensureRootfs, isRunning, loadHost, poweroff, reboot, run, type TestHost } from "./testhost";
import { ensureImage } from "./vm";

const DEFAULT_NAME = "testhost";

function stateDir(): string {
  return path.join(cacheDir(), "testhost-cli");
}

function statePath(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new Error(`bad host name: ${name}`);
  return path.join(stateDir(), `${name}.json`);
}

function saveState(h: TestHost): void {
  fs.mkdirSync(stateDir(), { recursive: true });
  fs.writeFileSync(statePath(h.name), JSON.stringify({ name: h.name, dir: h.dir }, null, 2) + "\n");
}

function loadState(name: string): TestHost | undefined {
  let dir: string;
  try {
    dir = (JSON.parse(fs.readFileSync(statePath(name), "utf8")) as { dir: string }).dir;
  } catch {
    return undefined;
  }
  if (!fs.existsSync(path.join(dir, "host.json"))) {
    fs.rmSync(statePath(name), { force: true }); // its directory is gone: stale state
    return undefined;
  }
  return loadHost(dir);
}

function mustLoad(name: string): TestHost {
  const h = loadState(name);
  if (!h) throw new Error(`no test host named "${name}" (run: npm run testhost -- up ${name})`);
  return h;
}

function describeHost(h: TestHost) {
  return { name: h.name, kind: h.kind, port: h.port, dir: h.dir, privateKeyPath: h.privateKeyPath, hostKey: h.hostKey, running: isRunning(h) };
}

async function readStdin(): Promise<Buffer | undefined> {
  if (process.stdin.isTTY) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function usage(): never {
  process.stderr.write(
    "usage: testhost up [name] | down [name] | ssh [name] -- CMD... | reboot [name] | poweroff [name] | boot [name] | list | rootfs | image\n",
  );
  process.exit(2);
}

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  const dash = rest.indexOf("--");
  const positional = dash >= 0 ? rest.slice(0, dash) : rest;
  const name = positional[0] ?? DEFAULT_NAME;
  switch (verb) {
    case "up": {
      const existing = loadState(name);
      if (existing) {
        if (!isRunning(existing)) await boot(existing);
        console.log(JSON.stringify(describeHost(existing), null, 2));
        return 0;
      }
      const h = await createHost(name, { persistent: true });
      saveState(h);
      try {
        await boot(h);
      } catch (e) {
        await destroyHost(h);
        fs.rmSync(statePath(name), { force: true });
        throw e;
      }
      console.log(JSON.stringify(describeHost(h), null, 2));
      return 0;
    }
    case "down": {
      const h = loadState(name);
      if (h) await destroyHost(h);
      fs.rmSync(statePath(name), { force: true });
      return 0;
    }
    case "ssh": {
      if (dash < 0 || dash === rest.length - 1) usage();
      const h = mustLoad(name);
      const command = rest.slice(dash + 1).join(" ");
      const r = await run(h, command, { stdin: await readStdin(), check: false });
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      return r.code;
    }
    case "reboot": {
      await reboot(mustLoad(name));
      return 0;
    }
    case "poweroff": {
      await poweroff(mustLoad(name));
      return 0;
    }
    case "boot": {
      const h = mustLoad(name);
      if (!isRunning(h)) await boot(h);
      console.log(JSON.stringify(describeHost(h), null, 2));
      return 0;
    }
    case "list": {
      let files: string[] = [];
      try {
        files = fs.readdirSync(stateDir()).filter((f) => f.endsWith(".json"));
      } catch {
        /* none */
      }
      const hosts = files.map((f) => loadState(f.replace(/\.json$/, ""))).filter((h): h is TestHost => h !== undefined);
      console.log(JSON.stringify(hosts.map(describeHost), null, 2));
      return 0;
    }
    case "rootfs": {
      console.log(await ensureRootfs());
      return 0;
    }
    case "image": {
      console.log(await ensureImage());
      return 0;
    }
    default:
      return usage();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`testhost: ${e.message}\n`);
    process.exit(1);
  },
);
