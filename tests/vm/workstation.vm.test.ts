// tests/host/workstation.host.test.ts on the VM test host (Debian trixie, systemd 257, tmux 3.5a, cgroup v2).
import "./vm-env";
import "../host/workstation.host.test";
