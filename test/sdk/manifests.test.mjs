// The Kubernetes manifests in deploy/kubernetes: every document validates against the
// Kubernetes API schemas (npm kubernetes-models, and the Prometheus Operator's for the
// ServiceMonitor), and they fit together and with the bridge: probes on /readyz and /healthz,
// selectors that select the pods, the Service's port, the Secret's and ConfigMap's keys that
// the Deployment reads, and PG_MCP_BRIDGE_* variables and bridge.conf lines that name real
// options of pg_mcp_bridge (its --help).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { bridgeBinary } from './helpers.mjs';

const DIR = new URL('../../deploy/kubernetes/', import.meta.url);
// apiVersion/kind → the module of kubernetes-models that has its class.
const MODELS = {
  'v1/ConfigMap': ['kubernetes-models/v1', 'ConfigMap'],
  'v1/Secret': ['kubernetes-models/v1', 'Secret'],
  'v1/Service': ['kubernetes-models/v1', 'Service'],
  'apps/v1/Deployment': ['kubernetes-models/apps/v1', 'Deployment'],
  'policy/v1/PodDisruptionBudget': ['kubernetes-models/policy/v1', 'PodDisruptionBudget'],
  'autoscaling/v2/HorizontalPodAutoscaler': ['kubernetes-models/autoscaling/v2', 'HorizontalPodAutoscaler'],
  'monitoring.coreos.com/v1/ServiceMonitor': ['@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1', 'ServiceMonitor']
};

async function validate(doc) {
  const model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  assert.ok(model, `a known kind: ${doc.apiVersion} ${doc.kind}`);
  const Class = (await import(model[0]))[model[1]];
  new Class(doc).validate();  // throws with what is wrong
}

async function manifests() {
  const docs = [];
  for (const file of (await readdir(DIR)).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const parsed of parseAllDocuments(await readFile(new URL(file, DIR), 'utf8'))) {
      assert.deepEqual(parsed.errors, [], `${file} is YAML`);
      docs.push({ file, doc: parsed.toJS() });
    }
  }
  return docs;
}

async function bridgeOptions() {
  const help = await new Promise(async (resolve, reject) =>
    execFile(await bridgeBinary(), ['--help'], (error, stdout) => (error ? reject(error) : resolve(stdout))));
  return new Set([...help.matchAll(/^ {2}--([a-z0-9-]+)/gm)].map((m) => m[1]));
}

test('manifests: every document validates against the Kubernetes API schemas', async () => {
  const docs = await manifests();
  const kinds = docs.map(({ doc }) => doc.kind).sort();
  assert.deepEqual(kinds, ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Secret', 'Service', 'ServiceMonitor']);
  for (const { file, doc } of docs) await validate(doc).catch((error) => assert.fail(`${file}: ${error.message}`));
  // The validation has teeth: a wrong type or a missing required field is refused.
  const deployment = docs.find(({ doc }) => doc.kind === 'Deployment').doc;
  await assert.rejects(validate({ ...deployment, spec: { ...deployment.spec, replicas: 'three' } }), /replicas/);
  const broken = structuredClone(deployment);
  delete broken.spec.template.spec.containers[0].name;
  await assert.rejects(validate(broken), /name/);
  const monitor = docs.find(({ doc }) => doc.kind === 'ServiceMonitor').doc;
  await assert.rejects(validate({ ...monitor, spec: { ...monitor.spec, endpoints: 'http' } }), /endpoints/);
});

test('manifests: the pieces fit together and name real bridge options', async () => {
  const docs = Object.fromEntries((await manifests()).map(({ doc }) => [doc.kind, doc]));
  const { Deployment: deployment, Service: service, ConfigMap: config, Secret: secret } = docs;
  const pod = deployment.spec.template;
  const [container] = pod.spec.containers;
  const labels = pod.metadata.labels;
  const selects = (selector) => Object.entries(selector).every(([k, v]) => labels[k] === v);
  assert.ok(selects(deployment.spec.selector.matchLabels));
  assert.ok(selects(service.spec.selector));
  assert.ok(selects(docs.PodDisruptionBudget.spec.selector.matchLabels));
  assert.equal(docs.HorizontalPodAutoscaler.spec.scaleTargetRef.name, deployment.metadata.name);
  assert.ok(Object.entries(docs.ServiceMonitor.spec.selector.matchLabels).every(([k, v]) => service.metadata.labels[k] === v));
  // Probes: ready on /readyz, alive on /healthz, on the port the bridge listens on.
  assert.equal(container.readinessProbe.httpGet.path, '/readyz');
  assert.equal(container.livenessProbe.httpGet.path, '/healthz');
  const port = container.ports.find((p) => p.name === 'http');
  assert.equal(config.data.PG_MCP_BRIDGE_HTTP, `0.0.0.0:${port.containerPort}`);
  assert.equal(service.spec.ports[0].targetPort, 'http');
  assert.equal(docs.ServiceMonitor.spec.endpoints[0].port, 'http');
  assert.equal(docs.ServiceMonitor.spec.endpoints[0].path, '/metrics');
  assert.equal(pod.spec.enableServiceLinks, false, 'no service-link variables in PG_MCP_BRIDGE_*');
  // Non-root, as the image is.
  assert.equal(pod.spec.securityContext.runAsUser, 10001);
  assert.equal(pod.spec.securityContext.runAsNonRoot, true);
  // What the pod reads from the Secret and the ConfigMap is there.
  for (const env of container.env ?? []) {
    if (env.valueFrom?.secretKeyRef) assert.ok(env.valueFrom.secretKeyRef.key in secret.stringData, env.name);
  }
  for (const volume of pod.spec.volumes) {
    for (const item of volume.secret?.items ?? []) assert.ok(item.key in secret.stringData, item.key);
  }
  const mounted = (path) => container.volumeMounts.some((m) => path.startsWith(m.mountPath));
  // Every setting names an option of the bridge, and every file it names is mounted.
  const options = await bridgeOptions();
  assert.ok(options.has('pool-size') && options.has('session-key-file'), 'the options were read from --help');
  for (const [name, value] of Object.entries(config.data)) {
    if (name === 'bridge.conf') continue;
    assert.match(name, /^PG_MCP_BRIDGE_[A-Z0-9_]+$/);
    const option = name.slice('PG_MCP_BRIDGE_'.length).toLowerCase().replaceAll('_', '-');
    assert.ok(options.has(option), `${name} names --${option}`);
    if (option === 'config') assert.ok(mounted(value), `${value} is mounted`);
  }
  for (const line of config.data['bridge.conf'].split('\n')) {
    const setting = line.replace(/#.*/, '').trim();
    if (!setting) continue;
    const [name, value] = setting.split('=').map((s) => s.trim());
    assert.ok(options.has(name), `bridge.conf: ${name} is an option`);
    if (name.endsWith('-file')) assert.ok(mounted(value), `${value} is mounted`);
  }
});
