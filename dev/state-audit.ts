/**
 * The state as an attacker holding it sees it: `pulumi stack export` WITHOUT
 * `--show-secrets` (the Automation API's `Stack.exportStack()` passes `--show-secrets` and so
 * decrypts everything), and every raw file of a file backend: the checkpoint, its `.bak`,
 * history and backups (gzipped ones included). Use it in every suite that puts a secret into
 * the state (ssh key, Vault token, Slack webhook, Forgejo and Kubernetes tokens).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { tempDir } from "./tmp";

export interface StateText {
  /** Where the text came from: "pulumi stack export" or a backend file path. */
  where: string;
  text: string;
}

export interface AuditOptions {
  /** Project dir the CLI runs in. */
  cwd: string;
  /** Environment of the CLI (PATH with pulumi, PULUMI_BACKEND_URL, passphrase, ...). */
  env: NodeJS.ProcessEnv;
  stack: string;
  /** The file backend's directory (PULUMI_BACKEND_URL=file://<dir>). */
  backendDir: string;
}

function walk(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.isFile() ? [p] : [];
  });
}

/**
 * Everything an attacker with the state would read. Throws if the CLI export fails. The export
 * goes to a file (`--file`), not a pipe: a large stack's export overflowed spawnSync's output
 * buffer (`spawnSync pulumi ENOBUFS`, issue 25).
 */
export function readStateAsAttacker(o: AuditOptions): StateText[] {
  const tmp = tempDir("ws-audit-export-");
  const file = path.join(tmp, "export.json");
  let text: string;
  try {
    const r = spawnSync("pulumi", ["--non-interactive", "stack", "export", "--stack", o.stack, "--file", file], {
      cwd: o.cwd,
      env: o.env,
      encoding: "utf8",
      timeout: 300_000,
      maxBuffer: 64 << 20,
    });
    if (r.error || r.status !== 0) throw new Error(`pulumi stack export failed (${r.status}): ${r.error?.message ?? ""}${r.stderr}`);
    if (/--show-secrets/.test(r.stderr + r.stdout)) throw new Error("unexpected: the export mentions --show-secrets");
    text = fs.readFileSync(file, "utf8");
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const out: StateText[] = [{ where: "pulumi stack export", text }];
  for (const f of walk(o.backendDir)) {
    let buf = fs.readFileSync(f);
    if (f.endsWith(".gz")) buf = zlib.gunzipSync(buf);
    out.push({ where: path.relative(o.backendDir, f), text: buf.toString("utf8") });
  }
  return out;
}

/** Every (place, secret) where a secret appears in plaintext; empty = clean. */
export function plaintextSecrets(texts: readonly StateText[], secrets: readonly string[]): string[] {
  const hits: string[] = [];
  for (const s of secrets) {
    if (s.length < 8) throw new Error(`plaintextSecrets: secret too short to search for (${s.length} chars)`);
    for (const t of texts) if (t.text.includes(s)) hits.push(`${t.where}: ${s.slice(0, 6)}…`);
  }
  return hits;
}

/** The export and the checkpoint carry the secrets as ciphertext (so they are there, encrypted). */
export function hasCiphertext(texts: readonly StateText[]): boolean {
  const exp = texts.find((t) => t.where === "pulumi stack export");
  return !!exp && /"ciphertext"\s*:/.test(exp.text) && /"4dabf18193072939515e22adb298388d"\s*:\s*"1b47061264138c4ac30d75fd1eb44270"/.test(exp.text);
}
