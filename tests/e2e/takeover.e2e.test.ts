// The whole takeover of the team's devvm under the real engine, on the bookworm nspawn host
// (the suite: ./takeover-suite.ts; on the trixie VM: tests/vm/takeover.vm.test.ts).
import { takeoverSuite } from "./takeover-suite";

takeoverSuite("nspawn");
