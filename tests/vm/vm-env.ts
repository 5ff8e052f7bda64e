// Imported first by every tests/vm/*.vm.test.ts: the host suites it imports then make VM test
// hosts (dev/testhost/vm.ts: Debian trixie, systemd 257, tmux 3.5a, cgroup v2) instead of nspawn.
process.env.WORKSTATIONS_TESTHOST = "vm";
