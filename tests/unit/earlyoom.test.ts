/**
 * The backstop's configuration (issue 23 item 3): `workstations:earlyoom` parsed with one-line
 * refusals, the drop-in systemd reads (ExecStart reset, `$` doubled), the program's
 * `host-earlyoom` resource (absent when the config says false), and workstations-status's
 * parsing and table. On the VM (tests/vm/limits.vm.test.ts): the real earlyoom with these
 * arguments, its choice of victim, and the status command against real slices.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { DEFAULT_EARLYOOM, EARLYOOM_AVOID, EARLYOOM_PREFER, earlyoomDropIn, parseEarlyoom } from "../../components/plan/earlyoom";
import { earlyoomApplyScript, earlyoomRemoveScript, hostLibrary } from "../../components/scripts/hostLib";
import { readExampleRoster, runProgram, unsecret } from "../../dev/mocks";

test("workstations:earlyoom: the team's thresholds by default, false leaves it alone, anything else refused in words", () => {
  assert.deepEqual(parseEarlyoom(undefined), DEFAULT_EARLYOOM);
  assert.deepEqual(DEFAULT_EARLYOOM, { memory: { term: 5, kill: 3 }, swap: { term: 100, kill: 100 } });
  assert.equal(parseEarlyoom(false), false);
  assert.deepEqual(parseEarlyoom({ memory: [10, 4] }), { memory: { term: 10, kill: 4 }, swap: { term: 100, kill: 100 } });
  for (const [raw, msg] of [
    [true, /must be false or an object/],
    [[5, 3], /must be false or an object/],
    [{ memory: [5] }, /memory must be \[term, kill\]/],
    [{ memory: [5, 300] }, /memory must be \[term, kill\], two percentages 0-100/],
    [{ memory: [3, 5] }, /the SIGKILL threshold \(5\) is above the SIGTERM one \(3\)/],
    [{ memory: [0, 0] }, /set workstations:earlyoom to false instead/],
    [{ mem: [5, 3] }, /unknown field "mem" \(memory, swap\)/],
  ] as const)
    assert.match(String(parseEarlyoom(raw)), msg, JSON.stringify(raw));
});

test("the drop-in resets ExecStart and sets the program's arguments; a $ is written $$ for systemd", () => {
  const d = earlyoomDropIn(DEFAULT_EARLYOOM);
  const lines = d.split("\n");
  assert.ok(lines.includes("[Service]") && lines.includes("ExecStart="));
  const exec = lines.find((l) => l.startsWith("ExecStart=/"))!;
  assert.ok(exec.startsWith("ExecStart=/usr/bin/earlyoom -m 5,3 -s 100,100 "), exec);
  assert.ok(exec.includes(`--prefer '${EARLYOOM_PREFER.replace(/\$/g, "$$$$")}'`), exec);
  assert.ok(exec.includes(`--avoid '${EARLYOOM_AVOID.replace(/\$/g, "$$$$")}'`), exec);
  assert.doesNotMatch(exec, /(?<!\$)\$(?!\$)/, "every $ is doubled");
  // the rules: claude avoided, its tool children (the version string) and the usual hogs preferred
  const prefer = new RegExp(EARLYOOM_PREFER);
  const avoid = new RegExp(EARLYOOM_AVOID);
  for (const n of ["2.1.332", "node", "python3", "python3.12", "chrome", "rg", "go"]) assert.match(n, prefer, n);
  for (const n of ["claude", "sshd", "ttyd", "tmux: server", "systemd", "systemd-journal"]) assert.match(n, avoid, n);
  for (const n of ["claude", "sshd", "tmux: server", "bash"]) assert.doesNotMatch(n, prefer, n);
});

test("the verbs are host-library calls (the library, shellchecked whole in scripts-shellcheck.test.ts, holds them)", () => {
  const lib = hostLibrary();
  assert.equal(earlyoomApplyScript(earlyoomDropIn(DEFAULT_EARLYOOM)).split(" ").slice(0, 2).join(" "), `${lib.path} earlyoom-apply`);
  assert.equal(earlyoomRemoveScript(), `${lib.path} earlyoom-remove`);
  assert.match(lib.content, /verb_earlyoom_apply\(\) \{/);
});

test("the program: host-earlyoom writes the drop-in by default; workstations:earlyoom false makes none; a bad value stops the run in one line", async () => {
  const roster = readExampleRoster();
  const on = (await runProgram({ roster })).resources.find((r) => r.name === "host-earlyoom");
  assert.ok(on, "host-earlyoom exists by default");
  assert.ok(String(unsecret(on.inputs.create)).includes(Buffer.from(earlyoomDropIn(DEFAULT_EARLYOOM)).toString("base64")));
  assert.ok(String(unsecret(on.inputs.delete)).endsWith(" earlyoom-remove"));
  const custom = (await runProgram({ roster, config: { earlyoom: '{"memory":[8,4]}' } })).resources.find((r) => r.name === "host-earlyoom")!;
  assert.ok(
    String(unsecret(custom.inputs.create)).includes(Buffer.from(earlyoomDropIn({ ...DEFAULT_EARLYOOM, memory: { term: 8, kill: 4 } })).toString("base64")),
  );
  assert.equal(
    (await runProgram({ roster, config: { earlyoom: "false" } })).resources.find((r) => r.name === "host-earlyoom"),
    undefined,
  );
  await assert.rejects(runProgram({ roster, config: { earlyoom: '{"memory":[3,5]}' } }), (e: Error) => {
    assert.match(
      e.message.split("\n")[0],
      /^Memory: the SIGKILL threshold \(5\) is above the SIGTERM one \(3\) in config key: workstations:earlyoom\. Set it with:$/,
    );
    return true;
  });
});

test("workstations-status: systemd's blocks parsed, and the table a person reads", async () => {
  // the agent is Node ESM (checked by tsconfig.agents.json); loaded as ESM, typed here by hand
  const load = new Function("p", "return import(p)") as (p: string) => Promise<unknown>;
  const s = (await load(path.join(__dirname, "../../scripts/agents/workstations-status.mjs"))) as {
    parseShow(t: string): Record<string, string>[];
    num(v: string): number | null;
    render(rows: unknown[], eo: { state: string; args: string }): string;
  };
  const blocks = s.parseShow("Id=user-2201.slice\nMemoryMax=402653184\nTasksMax=256\n\nId=user-2202.slice\nMemoryMax=infinity\nMemoryCurrent=[not set]\n");
  assert.deepEqual(blocks, [
    { Id: "user-2201.slice", MemoryMax: "402653184", TasksMax: "256" },
    { Id: "user-2202.slice", MemoryMax: "infinity", MemoryCurrent: "[not set]" },
  ]);
  assert.equal(s.num("infinity"), null);
  assert.equal(s.num("18446744073709551615"), null);
  assert.equal(s.num("402653184"), 402653184);
  const table = s.render(
    [
      {
        user: "ana",
        uid: 2201,
        state: "active",
        active: true,
        memory: 100 * 2 ** 20,
        memoryMax: 384 * 2 ** 20,
        swap: 0,
        swapMax: 0,
        tasks: 12,
        tasksMax: 256,
        cpuWeight: 100,
        oomKills: 1,
      },
      {
        user: "bob",
        uid: 2202,
        state: "suspended",
        active: false,
        memory: 0,
        memoryMax: null,
        swap: 0,
        swapMax: null,
        tasks: 0,
        tasksMax: null,
        cpuWeight: null,
        oomKills: 0,
      },
    ],
    { state: "not installed", args: "" },
  );
  assert.deepEqual(table.split("\n"), [
    "USER  UID   STATE             MEMORY         SWAP     TASKS      CPU      OOM-KILLS",
    "ana   2201  active            100M/384M 26%  0M/0M    12/256 5%  100      1",
    "bob   2202  suspended (idle)  0M/none        0M/none  0/none     default  0",
    "earlyoom: not installed",
    "",
  ]);
});
