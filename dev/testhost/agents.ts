/**
 * Installs the host agents onto a test host as the host component ships them: every file of
 * scripts/agents (entry points 0755 with their /usr/local/bin links, modules 0644 in their
 * sub-folders) under /usr/local/lib/workstations, owned by root. One remote command.
 */
import * as path from "node:path";
import { LIB_DIR, loadBundle } from "../../components/bundle";
import { UNITS, USERS_INDEX, USERS_INDEX_VERSION, UsersIndex } from "../../components/hostContract";
import { run, type TestHost } from "./testhost";

const ROOT = path.resolve(__dirname, "../..");

/** The agents' files as loadBundle maps them (path, mode, link, content). */
export function agentFiles(root: string = ROOT): { path: string; mode: string; link?: string; content: string }[] {
  return loadBundle(root).files.filter((f) => f.path.startsWith(`${LIB_DIR}/`));
}

/** The bash that installs them (read on stdin by `bash -s`): files are carried as base64. */
export function installAgentsScript(root: string = ROOT): string {
  const lines = ["set -euo pipefail", "umask 022", `install -d -m 0755 -o root -g root ${LIB_DIR}`];
  for (const f of agentFiles(root)) {
    if (!/^[A-Za-z0-9_./@+-]+$/.test(f.path) || (f.link && !/^[A-Za-z0-9_./@+-]+$/.test(f.link)))
      throw new Error(`installAgents: unsafe path ${JSON.stringify(f.path)}`);
    lines.push(`install -d -m 0755 -o root -g root ${path.posix.dirname(f.path)}`);
    lines.push(
      `base64 -d > ${f.path}.tmp <<'WS_AGENT_EOF'`,
      Buffer.from(f.content, "utf8")
        .toString("base64")
        .replace(/(.{76})/g, "$1\n"),
      "WS_AGENT_EOF",
    );
    lines.push(`chown root:root ${f.path}.tmp && chmod ${f.mode} ${f.path}.tmp && mv -f ${f.path}.tmp ${f.path}`);
    if (f.link) lines.push(`ln -sfn ${f.path} ${f.link}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * Installs every agent with `sh` (runs a command as root on the test host, with stdin).
 * @returns the installed paths
 */
export async function installAgents(sh: (cmd: string, stdin?: string) => Promise<unknown>, root: string = ROOT): Promise<string[]> {
  await sh("bash -s", installAgentsScript(root));
  return agentFiles(root).map((f) => f.path);
}

/** Writes the host's users.json for test users (active, tmux persisted, no token renewal), as the account verb would. */
export async function installUsersIndex(sh: (cmd: string, stdin?: string) => Promise<unknown>, users: readonly { name: string; uid: number }[]): Promise<void> {
  const doc: UsersIndex = {
    version: USERS_INDEX_VERSION,
    users: users.map((u) => ({
      name: u.name,
      uid: u.uid,
      home: `/home/${u.name}`,
      state: "active",
      email: `${u.name}@example.com`,
      tmuxPersist: true,
      claudeTokenRenew: false,
      claudeLogin: null,
    })),
  };
  await sh(`install -d -m 0755 /etc/workstations && cat > ${USERS_INDEX} && chmod 0644 ${USERS_INDEX}`, JSON.stringify(doc, null, 2));
}

/**
 * Whether the boot's tmux-persist restore unit is done (active, exited) on `h`, for a
 * `waitFor`; a failed restore throws, with the unit's journal of this boot.
 */
export async function restoreUnitDone(h: TestHost): Promise<boolean> {
  const r = await run(h, `systemctl show -p ActiveState -p SubState -p Result ${UNITS.tmuxRestore}`, { check: false });
  const st = Object.fromEntries(
    r.stdout
      .trim()
      .split("\n")
      .map((l) => l.split("=", 2)),
  );
  if (st.ActiveState === "failed" || (st.Result && st.Result !== "success")) {
    const j = (await run(h, `journalctl -b -u ${UNITS.tmuxRestore} --no-pager`, { check: false })).stdout;
    throw new Error(`restore failed: ${r.stdout}\n${j}`);
  }
  return st.ActiveState === "active" && st.SubState === "exited";
}
