// The e2e harness's report of a failed no-op `up` (dev/e2e.ts): each step it would take, with the
// engine's detailed diff and the changed keys' inputs, so a flake says which field moved.
import { test } from "node:test";
import assert from "node:assert/strict";
import { changeCollector, describeChange } from "../../dev/e2e";
import type { EngineEvent } from "@pulumi/pulumi/automation";

const URN = "urn:pulumi:devvm::workstations::kubernetes:core/v1:Secret::nadia-dashboard-token-nadia-apps";
const step = (op: string): EngineEvent =>
  ({
    sequence: 1,
    timestamp: 0,
    resourcePreEvent: {
      metadata: {
        op,
        urn: URN,
        type: "kubernetes:core/v1:Secret",
        provider: "",
        diffs: ["metadata"],
        detailedDiff: { metadata: { kind: "update", inputDiff: false } },
        old: { inputs: { metadata: { labels: {} }, type: "kubernetes.io/service-account-token" } },
        new: { inputs: { metadata: { labels: { owner: "nadia" } }, type: "kubernetes.io/service-account-token" } },
      },
    },
  }) as unknown as EngineEvent;

test("a step that changes something is collected with its diff, and described by the keys that changed; same and read are not", () => {
  const c = changeCollector();
  for (const op of ["same", "read", "update"]) c.onEvent(step(op));
  assert.deepEqual(
    c.changed.map((x) => x.op),
    ["update"],
  );
  assert.equal(
    describeChange(c.changed[0]),
    `update ${URN}: detailedDiff {"metadata":{"kind":"update","inputDiff":false}}; old {"metadata":{"labels":{}}}; new {"metadata":{"labels":{"owner":"nadia"}}}`,
  );
});
