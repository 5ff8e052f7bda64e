// The whole takeover of the team's devvm under the real engine, on the trixie VM host
// (systemd 257, tmux 3.5a, cgroup v2; the suite: ../e2e/takeover-suite.ts).
import { takeoverSuite } from "../e2e/takeover-suite";

takeoverSuite("vm");
