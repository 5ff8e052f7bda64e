// tests/host/testhost.test.ts on the VM test host: the harness, a real kernel reboot, a boot unit.
import "./vm-env";
import "../host/testhost.test";
