// Invalid MailRelays against the real API server: each is refused at admission with its
// CEL or OpenAPI message (including both duration() CEL rules, which the in-repo fake
// never evaluated), and every file in examples/ applies cleanly with
// `kubectl apply --server-side`. Then the values a child's own validation refuses
// (issue 11 point 3): either the CRD refuses them at admission (bare IPs, bad label
// values: in the table), or the operator reports Degraded naming the field and creates
// no child; and a value that only the NetworkPolicy validation refuses leaves every
// sibling applied and is not retried in a 422 loop.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { crd } from '../kube/crds.ts';
import { REPO } from './control-plane.ts';
import { eventually, operatorRequests, startCluster, startOperator, type ClusterEnv, type OperatorProc } from './harness.ts';

const base = { replicas: 1, relayNetworks: ['10.0.0.0/8'] };
const doc = (name: string, spec: object, namespace = 'invalid') => stringify({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name, namespace }, spec });

/** [what, name, spec, message the server answers with]. */
const TABLE: [string, string, object, RegExp][] = [
  ['name not a DNS-1035 label', '1relay', base, /metadata\.name must be a DNS-1035 label of at most 52 characters/],
  ['name too long for the pod names', 'r'.repeat(53), base, /metadata\.name must be a DNS-1035 label of at most 52 characters/],
  ['smarthost mode without a smarthost', 'no-smarthost', { ...base, delivery: { mode: 'smarthost' } }, /spec\.delivery\.smarthost: Invalid value: delivery\.mode smarthost needs delivery\.smarthost\.host/],
  ['a smarthost in mx mode', 'smarthost-in-mx', { ...base, delivery: { mode: 'mx', smarthost: { host: 'smtp.example.com' } } }, /delivery\.smarthost must not be set when delivery\.mode is mx/],
  ['smarthost credentials without TLS', 'creds-no-tls', { ...base, delivery: { mode: 'smarthost', smarthost: { host: 'h', tls: 'opportunistic', credentialsSecretRef: { name: 's' } } } }, /smarthost credentials are only sent over TLS/],
  // The two duration() CEL rules.
  ['maxAge shorter than the last retry delay (duration CEL)', 'max-age', { ...base, delivery: { retry: { schedule: ['5m', '2h'], maxAge: '90m' } } }, /spec\.delivery\.retry\.maxAge: Invalid value: delivery\.retry\.maxAge must be at least the last delay of delivery\.retry\.schedule/],
  ['grace period not above drainTimeout (duration CEL)', 'grace', { ...base, drainTimeout: '60s', terminationGracePeriodSeconds: 60 }, /spec\.terminationGracePeriodSeconds: Invalid value: terminationGracePeriodSeconds must exceed drainTimeout/],
  ['auth without TLS', 'auth-no-tls', { ...base, auth: { usersSecretRef: { name: 'u' } } }, /auth needs tls\.secretRef/],
  ['externalTrafficPolicy on ClusterIP', 'etp', { ...base, service: { externalTrafficPolicy: 'Local' } }, /service\.externalTrafficPolicy needs service\.type LoadBalancer or NodePort/],
  ['source ranges without LoadBalancer', 'ranges', { ...base, service: { loadBalancerSourceRanges: ['10.0.0.0/8'] } }, /service\.loadBalancerSourceRanges needs service\.type LoadBalancer/],
  ['scaleDown timeout with Immediate', 'timeout', { ...base, scaleDown: { policy: 'Immediate', timeout: '5m' } }, /scaleDown\.timeout only applies to scaleDown\.policy Drain/],
  // OpenAPI.
  ['autoscaling minReplicas above maxReplicas', 'as-min-max', { relayNetworks: ['10.0.0.0/8'], autoscaling: { minReplicas: 3, maxReplicas: 2 } }, /spec\.autoscaling\.minReplicas: Invalid value: autoscaling\.minReplicas must not exceed autoscaling\.maxReplicas/],
  ['spec.replicas beside operator autoscaling (they would fight)', 'as-fight', { ...base, autoscaling: { maxReplicas: 4 } }, /spec\.replicas: Invalid value: spec\.replicas must be unset while autoscaling\.mode is operator/],
  ['autoscaling with scaleDown Immediate (would strand mail)', 'as-immediate', { relayNetworks: ['10.0.0.0/8'], autoscaling: { maxReplicas: 4 }, scaleDown: { policy: 'Immediate' } }, /autoscaling scales down only through the drain/],
  ['autoscaling mode keda without a Prometheus', 'as-keda', { relayNetworks: ['10.0.0.0/8'], autoscaling: { mode: 'keda', maxReplicas: 4 } }, /autoscaling\.mode keda needs autoscaling\.keda\.serverAddress/],
  ['autoscaling maxReplicas 0', 'as-zero', { relayNetworks: ['10.0.0.0/8'], autoscaling: { maxReplicas: 0 } }, /spec\.autoscaling\.maxReplicas: Invalid value: 0: spec\.autoscaling\.maxReplicas in body should be greater than or equal to 1/],
  ['negative replicas', 'negative', { ...base, replicas: -1 }, /spec\.replicas: Invalid value: -1: spec\.replicas in body should be greater than or equal to 0/],
  ['a duration without a unit', 'no-unit', { ...base, drainTimeout: '60' }, /spec\.drainTimeout in body should match/],
  ['a bad quantity', 'bad-quantity', { ...base, maxMessageSize: '25 MB' }, /spec\.maxMessageSize in body should match/],
  ['an unknown enum value', 'bad-enum', { ...base, logLevel: 'verbose' }, /spec\.logLevel: Unsupported value: "verbose"/],
  ['an unknown field (strict field validation)', 'unknown-field', { ...base, replica: 2 }, /\.spec\.replica: field not declared in schema/],
  // Point 3, refused at admission now: bare addresses where a NetworkPolicy or Service needs a CIDR, bad label values.
  ['a bare IP in ipBlock.cidr', 'bare-cidr', { ...base, networkPolicy: { enabled: true, allowedClients: [{ ipBlock: { cidr: '10.0.0.1' } }] } }, /ipBlock\.cidr in body should match/],
  ['a bare IP in ipBlock.except', 'bare-except', { ...base, networkPolicy: { enabled: true, allowedClients: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.2.3'] } }] } }, /ipBlock\.except\[0\] in body should match/],
  ['a bare IP in loadBalancerSourceRanges', 'bare-range', { ...base, service: { type: 'LoadBalancer', loadBalancerSourceRanges: ['192.0.2.1'] } }, /loadBalancerSourceRanges\[0\] in body should match/],
  ['a podLabels value that is no label value', 'bad-label', { ...base, podLabels: { team: 'mail team' } }, /spec\.podLabels\.team in body should match/],
  ['a nodeSelector value that is no label value', 'bad-selector', { ...base, nodeSelector: { pool: 'x'.repeat(64) } }, /spec\.nodeSelector\.pool: Too long/],
];

describe('invalid MailRelays on the real API server', { timeout: 600_000 }, () => {
  let env: ClusterEnv;
  let op: OperatorProc | undefined;
  before(async () => {
    env = await startCluster();
    env.kubectl(['create', 'namespace', 'invalid']);
    env.kubectl(['create', 'namespace', 'degraded']);
    env.kubectl(['create', 'namespace', 'mail']);
  });
  after(async () => {
    await op?.stop();
    await env?.close();
  });

  for (const [what, name, spec, message] of TABLE) {
    it(`refuses ${what}`, () => {
      const r = env.cp.kubectlResult(['apply', '--server-side', '-f', '-'], { input: doc(name, spec) });
      assert.notEqual(r.code, 0, `accepted: ${r.stdout}`);
      assert.match(r.stderr, message);
    });
  }

  it('refuses a spool size change (CEL transition rule)', () => {
    env.kubectl(['apply', '--server-side', '-f', '-'], doc('imm', { ...base, spool: { size: '10Gi' } }));
    const r = env.cp.kubectlResult(['apply', '--server-side', '-f', '-'], { input: doc('imm', { ...base, spool: { size: '20Gi' } }) });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /spool\.size is immutable/);
  });

  it('applies every file in examples/ with kubectl apply --server-side', () => {
    // The smarthost example gets its STARTTLS certificate from cert-manager: its CRD, reduced.
    env.kubectl(['apply', '--server-side', '-f', '-'], stringify(crd({ group: 'cert-manager.io', kind: 'Certificate', plural: 'certificates', schema: { type: 'object', properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } } })));
    env.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/certificates.cert-manager.io']);
    for (const file of readdirSync(join(REPO, 'examples')).filter((f) => f.startsWith('mailrelay-') && f.endsWith('.yaml'))) {
      const r = env.cp.kubectlResult(['apply', '--server-side', '-f', join(REPO, 'examples', file)]);
      assert.equal(r.code, 0, `${file}: ${r.stderr}`);
      assert.match(r.stdout, /serverside-applied/);
    }
  });

  it('kubectl get/delete all leaves MailRelays alone; the "mail" category lists them (point 9)', () => {
    assert.doesNotMatch(env.kubectl(['get', 'all', '-n', 'mail', '-o', 'name']), /mailrelay/);
    assert.match(env.kubectl(['get', 'mail', '-n', 'mail', '-o', 'name']), /mailrelay\.mailrelay\.io\/relay/);
    env.kubectl(['delete', 'all', '--all', '-n', 'mail', '--wait=false']);
    assert.match(env.kubectl(['get', 'mailrelays', '-n', 'mail', '-o', 'name']), /mailrelay\.mailrelay\.io\/relay/);
  });

  // Point 3, the values only the children's validation knows: reported, never looped on.
  const DEGRADED: [string, string, object, RegExp][] = [
    ['a peer with both ipBlock and podSelector', 'both', { networkPolicy: { enabled: true, allowedClients: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] } }, /spec\.networkPolicy\.allowedClients\[0\]\.ipBlock: a peer has either ipBlock or namespaceSelector\/podSelector/],
    ['an empty peer', 'empty', { networkPolicy: { enabled: true, allowedClients: [{}] } }, /spec\.networkPolicy\.allowedClients\[0\]: an empty peer/],
    ['an Exists toleration with a value', 'tol', { tolerations: [{ key: 'k', operator: 'Exists', value: 'v' }] }, /spec\.tolerations\[0\]\.value: must be empty when operator is Exists/],
    ['requests above limits', 'res', { resources: { requests: { memory: '1Gi' }, limits: { memory: '512Mi' } } }, /spec\.resources\.requests\.memory: must be less than or equal to memory limit/],
  ];

  it('reports the child-only invalid values as Degraded InvalidSpec naming the field, with no children', async () => {
    op = startOperator(env, 'operator-0');
    for (const [, name, extra] of DEGRADED) env.kubectl(['apply', '--server-side', '-f', '-'], doc(name, { ...base, ...extra }, 'degraded'));
    for (const [what, name, , message] of DEGRADED) {
      const degraded = await eventually(`${what}: Degraded`, () => {
        const mr = env.getJson(['mailrelay', '-n', 'degraded', name]);
        return mr.status?.conditions?.find((c: { type: string; status: string }) => c.type === 'Degraded' && c.status === 'True');
      }, 60_000).catch((err: Error) => { throw new Error(`${err.message}\n${op?.output().slice(-3000)}`); });
      assert.equal(degraded.reason, 'InvalidSpec', what);
      assert.match(degraded.message, message, what);
    }
    assert.equal(env.getJson(['statefulsets,configmaps,networkpolicies', '-n', 'degraded', '-l', 'app.kubernetes.io/name=mailrelay']).items.length, 0);
  });

  it('a NetworkPolicy the API server refuses blocks no sibling and is not retried in a loop', async () => {
    // except outside cidr: only networking/v1 validation knows ("must be a strict subset of `cidr`").
    env.kubectl(['apply', '--server-side', '-f', '-'], doc('np', { ...base, networkPolicy: { enabled: true, allowedClients: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['192.168.0.0/16'] } }] } }, 'mail'));
    const degraded = await eventually('Degraded ApplyFailed', () => {
      const mr = env.getJson(['mailrelay', '-n', 'mail', 'np']);
      return mr.status?.conditions?.find((c: { type: string; status: string }) => c.type === 'Degraded' && c.status === 'True');
    }, 60_000);
    assert.equal(degraded.reason, 'ApplyFailed');
    assert.match(degraded.message, /NetworkPolicy mail\/np: 422: .*spec\.ingress\[0\]\.from\[0\]\.ipBlock\.except\[0\]/);
    // Its siblings were applied all the same.
    for (const kind of ['statefulset/np', 'configmap/np-config', 'service/np', 'service/np-headless', 'poddisruptionbudget/np']) env.kubectl(['get', '-n', 'mail', kind]);
    // No 422 loop: over 20 s, at most the one failed apply (plus none for the healthy children).
    const count = () => operatorRequests(env.cp).filter((e) => e.objectRef?.resource === 'networkpolicies' && e.objectRef.namespace === 'mail' && e.verb === 'patch').length;
    const before = count();
    await new Promise((r) => setTimeout(r, 20_000));
    assert.ok(count() - before <= 1, `NetworkPolicy PATCHes in 20 s: ${count() - before}`);
  });
});
