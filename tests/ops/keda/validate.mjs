// Validates KEDA objects against KEDA's schema (validators generated from KEDA's API types by
// @kubernetes-models/keda). Reads a JSON array of objects on stdin; prints one JSON result per object:
// {kind, name, errors: [...]} with errors empty when the object is valid.
import { readFileSync } from "node:fs";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { ScaledJob } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledJob";

const models = { ScaledObject, TriggerAuthentication, ScaledJob };
const objects = JSON.parse(readFileSync(0, "utf8"));
const results = objects.map((obj) => {
  const name = obj?.metadata?.name ?? null;
  const Model = models[obj?.kind];
  if (!Model || obj.apiVersion !== "keda.sh/v1alpha1") {
    return { kind: obj?.kind ?? null, name, errors: [`not a known keda.sh/v1alpha1 kind: ${obj?.apiVersion} ${obj?.kind}`] };
  }
  try {
    new Model(obj).validate();
    return { kind: obj.kind, name, errors: [] };
  } catch (e) {
    const details = (e.errors ?? []).map((d) => `${d.instancePath || "/"} ${d.message}`);
    return { kind: obj.kind, name, errors: details.length ? details : [String(e.message ?? e)] };
  }
});
process.stdout.write(JSON.stringify(results));
