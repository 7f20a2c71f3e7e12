// Validates Kubernetes manifests offline against the upstream OpenAPI schemas bundled in the npm
// package kubernetes-models (4.x: node 20), and the Prometheus operator's custom resources
// (ServiceMonitor, ...) against @kubernetes-models/prometheus-operator. Every document must be a
// kind one of them knows.
// Usage: NODE_PATH=DIR/node_modules node validate_k8s.js FILE.yaml... ('-' = stdin)
'use strict';
const fs = require('fs');
const YAML = require('yaml');

function modelFor(apiVersion, kind) {
  // "apps/v1" -> kubernetes-models/apps/v1; "v1" -> kubernetes-models/v1
  // Custom resources: their group's package (the operator's CRD schemas).
  const crdPackages = { 'monitoring.coreos.com': '@kubernetes-models/prometheus-operator' };
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  const root = crdPackages[group] || 'kubernetes-models';
  let module;
  try {
    module = require(`${root}/${apiVersion}`);
  } catch (error) {
    throw new Error(`unknown apiVersion ${apiVersion}`);
  }
  if (typeof module[kind] !== 'function') throw new Error(`unknown kind ${apiVersion} ${kind}`);
  return module[kind];
}

let failures = 0;
let documents = 0;
for (const file of process.argv.slice(2)) {
  const text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  for (const doc of YAML.parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      console.error(`${file}: YAML error: ${doc.errors[0].message}`);
      failures++;
      continue;
    }
    const object = doc.toJSON();
    if (object === null) continue;  // an empty document (e.g. after a trailing ---)
    documents++;
    const name = `${file}: ${object.kind}/${object.metadata && object.metadata.name}`;
    try {
      const Model = modelFor(object.apiVersion, object.kind);
      new Model(object).validate();
      console.log(`ok ${name}`);
    } catch (error) {
      console.error(`FAIL ${name}: ${error.message}`);
      failures++;
    }
  }
}
if (documents === 0) {
  console.error('no manifests given');
  process.exit(1);
}
process.exit(failures === 0 ? 0 : 1);
