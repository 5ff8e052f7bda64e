/**
 * `workstations:tmuxResumeArgs` (issue 22 item 4): the program writes tmux-persist's config
 * file (/etc/workstations/tmux-persist.json, the agent's --config default) into the host
 * archive when it is set, none when it is not, and refuses a value the agent would refuse, in
 * one line. The agent reading it is tested against real tmux in tests/tmux/lobby.test.ts.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { TMUX_PERSIST_CONFIG } from "../../components/hostContract";
import { readExampleRoster, runProgram } from "../../dev/mocks";
import { tempDir } from "../../dev/tmp";

/** The files of the host archive the program's copy resource ships: path -> text. */
async function shipped(config: Record<string, string>): Promise<Map<string, string>> {
  const { resources } = await runProgram({ roster: readExampleRoster(), config });
  const copy = resources.find((r) => r.type === "command:remote:CopyToRemote")!;
  const dir = tempDir("ws-tmuxcfg-");
  try {
    const tar = spawnSync("tar", ["-x", "-f", await copy.inputs.source.path, "-C", dir]);
    assert.equal(tar.status, 0, String(tar.stderr));
    const out = new Map<string, string>();
    for (const l of fs.readFileSync(path.join(dir, "MANIFEST"), "utf8").trim().split("\n")) {
      const [idx, , file] = l.split(" ");
      out.set(file, fs.readFileSync(path.join(dir, "files", idx), "utf8"));
    }
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("tmuxResumeArgs set: the archive holds tmux-persist.json with them; unset: no such file (the agent's default)", async () => {
  const agent = fs.readFileSync(path.join(__dirname, "../../scripts/agents/tmux/cli.mjs"), "utf8");
  assert.ok(agent.includes(`config: '${TMUX_PERSIST_CONFIG}'`), "the agent's --config default is the file the program writes");
  const team = ["--dangerously-skip-permissions", "--resume", "{uuid}", "--name", "{session}"];
  const on = await shipped({ tmuxResumeArgs: JSON.stringify(team) });
  assert.deepEqual(JSON.parse(on.get(TMUX_PERSIST_CONFIG)!), { resumeArgs: team });
  const off = await shipped({});
  assert.ok(off.size > 5 && !off.has(TMUX_PERSIST_CONFIG));
});

test("a value the agent would refuse stops the run in one line naming the key", async () => {
  for (const bad of ['["--name","{session}"]', '["{uuid}","--resume"]', '["--resume","{uuid}","-r","{uuid}"]', '"--resume {uuid}"', '["--resume",""]']) {
    await assert.rejects(runProgram({ roster: readExampleRoster(), config: { tmuxResumeArgs: bad } }), (e: Error) => {
      assert.match(e.message.split("\n")[0], /"--resume", "\{uuid\}" exactly once is expected in config key: workstations:tmuxResumeArgs\. Set it with:$/, bad);
      return true;
    });
  }
});
