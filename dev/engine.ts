/**
 * A small stand-in for the Pulumi engine's remote.Command semantics, for host tests:
 * it runs the exact command strings the program generated (captured under mocks) on a
 * host, with the engine's rules:
 *  - a new resource runs `create` (stdin piped);
 *  - a resource whose inputs changed runs `update` (or `create` when there is no update);
 *  - an unchanged resource runs nothing;
 *  - a resource gone from the program runs the `delete` stored in state (old inputs),
 *    in reverse registration order, after creates and updates.
 * The real engine is exercised by the e2e suite; this replays the same scripts quickly.
 */
import * as fs from "fs";
import { shq } from "../components/scripts/shell";
import { Captured, runProgram, RunOptions, unsecret } from "./mocks";

export interface CommandSpec {
  name: string;
  create?: string;
  update?: string;
  delete?: string;
  stdin?: string;
}

export interface Runner {
  (command: string, stdin?: string): Promise<{ code: number; stdout: string; stderr: string }>;
}

export interface Action {
  op: "create" | "update" | "delete";
  name: string;
  stdout: string;
}

export function specOf(r: Captured): CommandSpec {
  const { create, update, delete: del, stdin } = unsecret(r.inputs);
  return { name: r.name, create, update, delete: del, stdin };
}

/**
 * A CopyToRemote (the host files' archive) as a command: its create writes the asset's bytes
 * to the remote path (the archive is UTF-8 text and ASCII headers, so a string carries it
 * exactly). The engine's copy has no delete and runs again only when the asset's hash (here:
 * the bytes) or the remote path changes.
 */
async function copySpec(r: Captured): Promise<CommandSpec> {
  const { remotePath } = unsecret(r.inputs);
  const file = await (r.inputs.source as { path: Promise<string> }).path;
  return { name: r.name, create: `cat > ${shq(remotePath)}`, stdin: fs.readFileSync(file, "utf8") };
}

/** Captures the command specs the program generates for a roster, in registration order. */
export async function capture(opts: RunOptions): Promise<CommandSpec[]> {
  const { resources } = await runProgram(opts);
  return Promise.all(
    resources
      .filter((r) => r.type === "command:remote:Command" || r.type === "command:remote:CopyToRemote")
      .map((r) => (r.type === "command:remote:CopyToRemote" ? copySpec(r) : specOf(r))),
  );
}

/** Counts `changed:` lines in a script's stdout (the scripts' idempotency signal). */
export function changes(stdout: string): string[] {
  return stdout.split("\n").filter((l) => l.startsWith("changed: "));
}

export class MiniEngine {
  /** name -> spec as stored in "state", in registration order. */
  state = new Map<string, CommandSpec>();

  constructor(private readonly runner: Runner) {}

  private async exec(op: Action["op"], spec: CommandSpec, script: string): Promise<Action> {
    const r = await this.runner(script, op === "delete" ? undefined : spec.stdin);
    if (r.code !== 0) {
      const err = new Error(`${op} ${spec.name} failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
      (err as Error & { result?: unknown }).result = r;
      throw err;
    }
    return { op, name: spec.name, stdout: r.stdout };
  }

  /** One `pulumi up`: converge the host from the stored state to `desired`. Stops at the first failure, like the engine. */
  async up(desired: CommandSpec[], opts: { stopAfter?: number } = {}): Promise<Action[]> {
    const actions: Action[] = [];
    const budget = () => opts.stopAfter !== undefined && actions.length >= opts.stopAfter;
    for (const spec of desired) {
      if (budget()) return actions;
      const old = this.state.get(spec.name);
      if (!old) {
        if (spec.create) actions.push(await this.exec("create", spec, spec.create));
      } else if (JSON.stringify(old) !== JSON.stringify(spec)) {
        const script = spec.update ?? spec.create;
        if (script) actions.push(await this.exec("update", spec, script));
      } else continue;
      this.state.set(spec.name, spec);
    }
    const keep = new Set(desired.map((d) => d.name));
    for (const [name, spec] of [...this.state].reverse()) {
      if (keep.has(name)) continue;
      if (budget()) return actions;
      if (spec.delete) actions.push(await this.exec("delete", spec, spec.delete));
      this.state.delete(name);
    }
    return actions;
  }

  /** `pulumi destroy --target X --target-dependents`: delete the named resources (reverse order). */
  async destroy(match: (name: string) => boolean): Promise<Action[]> {
    const actions: Action[] = [];
    for (const [name, spec] of [...this.state].reverse()) {
      if (!match(name)) continue;
      if (spec.delete) actions.push(await this.exec("delete", spec, spec.delete));
      this.state.delete(name);
    }
    return actions;
  }

  /** Runs every stored create/update script again as if all inputs changed: they must report no change. */
  async rerunAll(): Promise<Action[]> {
    const actions: Action[] = [];
    for (const spec of this.state.values()) {
      const script = spec.update ?? spec.create;
      if (script) actions.push(await this.exec("update", spec, script));
    }
    return actions;
  }
}
