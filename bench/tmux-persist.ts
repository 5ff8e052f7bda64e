/**
 * Wall time of one `tmux-persist save` and one `tmux-persist restore` with 10 users x 20
 * panes (real tmux servers of throwaway local users, as in tests/tmux). Needs root.
 *
 *   npm run bench:tmux            (BENCH_RUNS=7 BENCH_USERS=10 BENCH_PANES=20 to change)
 *
 * Per user: 4 sessions x (a window of 3 panes + a window of 2 panes). Every other pane is a
 * claude stand-in (`exec -a claude sleep`, cheap; the node fake would cost ~40 MB per pane)
 * in its own project dir, with a transcript created after it started, so save resolves a
 * uuid for each. Each save run writes into an empty state dir (a full write, not the
 * "unchanged" shortcut); each restore run starts from no tmux servers at all.
 * Times include node start-up of the script (that is what the units pay).
 */
import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as L from "../tests/tmux/lib";

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const USERS = Number(process.env.BENCH_USERS ?? 10);
const PANES = Number(process.env.BENCH_PANES ?? 20);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
function timed(f: () => L.TPResult): number {
  const t0 = process.hrtime.bigint();
  const r = f();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`tmux-persist exited ${r.status}:\n${r.stderr}`);
  return ms;
}

function main(): void {
  const why = L.cannotRun();
  if (why) {
    console.error(`bench:tmux skipped: ${why}`);
    process.exit(0);
  }
  const env = L.setupEnv(USERS);
  try {
    // restore's claude stand-in: cheap too
    const benchClaude = path.join(env.bin, "bench-claude");
    fs.writeFileSync(benchClaude, "#!/bin/bash\nexec -a claude sleep 100000\n", { mode: 0o755 });
    const usersFile = path.join(env.base, "users.json");
    L.writeUsersJson(usersFile, env.users.map((u) => ({ u })));
    let claude = 0;
    for (const u of env.users) {
      const claudeDirs: string[] = [];
      let k = 0;
      const sessions = 4;
      const panesPerSession = Math.ceil(PANES / sessions);
      for (let s = 0; s < sessions; s++) {
        const w0 = Math.ceil(panesPerSession / 2);
        const w1 = panesPerSession - w0;
        const windows: L.WindowSpec[] = [];
        for (const count of [w0, w1]) {
          if (!count) continue;
          const panes: L.PaneSpec[] = [];
          for (let p = 0; p < count && k < PANES; p++, k++) {
            const cwd = L.userDir(u, `bench/s${s}/p${k}`);
            const isClaude = k % 2 === 0;
            if (isClaude) claudeDirs.push(cwd);
            panes.push({ cwd, cmd: isClaude ? ["bash", "-c", "exec -a claude sleep 100000"] : undefined });
          }
          if (panes.length) windows.push({ panes });
        }
        if (windows.length) L.makeSession(env, u, `bench-${s}`, windows);
      }
      L.sleep(50);
      for (const cwd of claudeDirs) {
        const dir = path.join(u.home, ".claude", "projects", cwd.replace(/[^A-Za-z0-9]/g, "-"));
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, `${crypto.randomUUID()}.jsonl`), '{"type":"user"}\n');
      }
      spawnSync("chown", ["-R", `${u.uid}:${u.gid}`, path.join(u.home, ".claude")]);
      claude += claudeDirs.length;
    }
    const panesTotal = env.users.reduce((n, u) => n + L.livePanes(env, u).length, 0);
    const procs = fs.readdirSync("/proc").filter((n) => /^[0-9]+$/.test(n)).length;
    console.log(`tmux-persist bench: ${USERS} users, ${panesTotal} panes (${claude} claude), ${procs} processes on the machine, ${RUNS} runs each`);

    const saves: number[] = [];
    let stateDir = "";
    for (let i = 0; i < RUNS; i++) {
      stateDir = path.join(env.base, `state-${i}`);
      saves.push(timed(() => L.runTP("save", { usersFile, stateDir, claudeBin: benchClaude })));
    }
    const snap = JSON.parse(fs.readFileSync(path.join(stateDir, env.users[0].name, "last"), "utf8"));
    const resolved = snap.sessions.flatMap((s: any) => s.windows.flatMap((w: any) => w.panes)).filter((p: any) => p.claude?.uuid).length;
    if (resolved !== claude / USERS) throw new Error(`save resolved ${resolved} claude uuids for one user, expected ${claude / USERS}`);
    const unchanged = timed(() => L.runTP("save", { usersFile, stateDir, claudeBin: benchClaude }));

    const restores: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      for (const u of env.users) L.killUser(env, u);
      restores.push(timed(() => L.runTP("restore", { usersFile, stateDir, claudeBin: benchClaude })));
      const back = env.users.reduce((n, u) => n + L.livePanes(env, u).length, 0);
      if (back !== panesTotal) throw new Error(`restore brought back ${back} of ${panesTotal} panes`);
    }
    const noop = timed(() => L.runTP("restore", { usersFile, stateDir, claudeBin: benchClaude }));
    const fmtRuns = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(" ");
    console.log(`save    (full write):        median ${median(saves).toFixed(0)} ms   runs: ${fmtRuns(saves)}`);
    console.log(`save    (unchanged state):   ${unchanged.toFixed(0)} ms`);
    console.log(`restore (all servers gone):  median ${median(restores).toFixed(0)} ms   runs: ${fmtRuns(restores)}`);
    console.log(`restore (everything exists): ${noop.toFixed(0)} ms`);
  } finally {
    L.teardownEnv(env);
  }
}

main();
