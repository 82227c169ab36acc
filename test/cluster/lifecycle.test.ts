// The whole life cycle of a MailRelay on a real control plane, with the operator running
// as the chart's ServiceAccount (the chart's RBAC judges every request) and the
// simulated kubelet running the relay from the real Pod objects:
//   1. children applied under the ServiceAccount's RBAC (server-side apply that creates
//      needs "create": issue 11 point 1);
//   2. the real StatefulSet controller creates the pod, the real scheduler binds it to the
//      Node, the real PV controller binds its spool claim;
//   3. the kubelet runs the relay and posts pod status; the MailRelay ends Ready=True;
//   4. mail goes through the relay to smtp-sink;
//   then steady state (no PATCH, no Event: point 5), the Secrets the operator read
//   (point 4), its watches (point 7), and
//   5. a spec change rolls the pods; 6. kubectl scale down drains without stranding mail;
//   7. a delete is cascaded by the real garbage collector; 8. delete --cascade=orphan and
//   a re-create adopts the children (OwnerReferencesPermissionEnforcement: point 2).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import { startSmtpSink, type SmtpSink } from '../peers/postfix.ts';
import { eventually, operatorRequests, startCluster, startOperator, type ClusterEnv, type OperatorProc } from './harness.ts';

const NS = 'mail';
const USERS = 'app:$2b$10$/cxA/h56p3p6YJVw6CjvheDflgMtS/3GhGOwXq11WQ9FImT70IvPq\n'; // password change-me
type Obj = any; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('MailRelay life cycle on a real control plane', { timeout: 600_000 }, () => {
  let env: ClusterEnv;
  let op: OperatorProc;
  let sink: SmtpSink;
  const mr = () => env.getJson(['mailrelay', '-n', NS, 'relay']);
  const condition = (o: Obj, type: string) => o?.status?.conditions?.find((c: Obj) => c.type === type);
  const waitReady = (what: string, timeoutMs = 120_000) => eventually(what, () => {
    const o = mr();
    return condition(o, 'Ready')?.status === 'True' && o;
  }, timeoutMs).catch((err: Error) => { throw new Error(`${err.message}\nconditions: ${JSON.stringify(mr().status?.conditions)}\noperator:\n${op.output().slice(-3000)}\nkubelet pods: ${JSON.stringify(env.kubelet?.pods().map((p) => ({ ...p, output: p.output.slice(-1500) })))}`); });
  const relaySpec = (extra: object = {}) => ({
    replicas: 1,
    relayNetworks: ['127.0.0.0/8'],
    auth: { usersSecretRef: { name: 'relay-users' }, requireTLS: false },
    delivery: { mode: 'smarthost', smarthost: { host: '127.0.0.1', port: sink.port, tls: 'none' }, retry: { schedule: ['1s'], maxAge: '1h' } },
    drainTimeout: '5s',
    // Non-canonical quantities: the server stores 500m and 1536Mi (point 5).
    resources: { requests: { cpu: '0.5', memory: '1.5Gi' }, limits: { memory: '2Gi' } },
    ...extra,
  });
  const apply = (spec: object) => env.kubectl(['apply', '--server-side', '-f', '-'], stringify({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'relay', namespace: NS }, spec }));
  const pod = (name: string) => env.getJson(['pod', '-n', NS, name]);
  const sendThrough = async (podName: string, to: string) => {
    const p = env.kubelet?.pods().find((x) => x.name === podName);
    assert.ok(p, `the kubelet runs ${podName}`);
    const t = nodemailer.createTransport({ host: p.podIP, port: 2525, secure: false, ignoreTLS: true, auth: { user: 'app', pass: 'change-me' } });
    try {
      await t.sendMail({ from: 'app@example.com', to, subject: `via ${podName}`, text: 'hello\n' });
    } finally {
      t.close();
    }
  };
  const delivered = (rcpt: string) => eventually(`${rcpt} at the smarthost`, () => sink.messages().some((m) => m.rcpts.includes(rcpt)), 60_000);

  before(async () => {
    env = await startCluster({ kubelet: true });
    sink = await startSmtpSink({ dump: true });
    // Relay pods must meet the restricted Pod Security Standard: enforce it.
    env.kubectl(['create', 'namespace', NS]);
    env.kubectl(['label', 'namespace', NS, 'pod-security.kubernetes.io/enforce=restricted']);
    env.kubectl(['create', 'secret', 'generic', 'relay-users', '-n', NS, `--from-literal=users=${USERS}`]);
    // A Secret no MailRelay references: the operator must never read it.
    env.kubectl(['create', 'secret', 'generic', 'unrelated', '-n', NS, '--from-literal=password=hunter2']);
    op = startOperator(env, 'operator-0');
  });
  after(async () => {
    await op?.stop();
    await sink?.close();
    await env?.close();
  });

  it('1-3: children applied under the chart RBAC; the real controllers create, schedule and bind; the relay runs; Ready=True', async () => {
    apply(relaySpec());
    const o = await waitReady('Ready=True');
    assert.equal(o.status.readyReplicas, 1);
    const p = pod('relay-0');
    assert.equal(p.spec.nodeName, env.cp.node.name, 'bound by the scheduler');
    assert.equal(p.metadata.ownerReferences[0].kind, 'StatefulSet');
    assert.equal(env.getJson(['pvc', '-n', NS, 'spool-relay-0']).status.phase, 'Bound');
    const denied = operatorRequests(env.cp).filter((e) => (e.responseStatus?.code ?? 0) === 403);
    assert.deepEqual(denied.map((e) => `${e.verb} ${e.requestURI}: ${e.responseStatus?.message}`), [], 'no request of the operator was forbidden');
  });

  it('4: mail goes through the relay pod to the smarthost', async () => {
    await sendThrough('relay-0', 'bob@example.net');
    const msg = (await delivered('bob@example.net')) && sink.messages().find((m) => m.rcpts.includes('bob@example.net'));
    assert.match(msg?.content ?? '', /with ESMTPA/);
  });

  it('steady state: once Ready, no PATCH and no Event, even across wake-ups and an operator restart (point 5)', async () => {
    const writes = () => operatorRequests(env.cp).filter((e) => ['patch', 'create', 'update', 'delete'].includes(e.verb) && !(e.objectRef?.resource === 'leases'));
    await new Promise((r) => setTimeout(r, 5000)); // let the Ready status write and its Events settle
    const before = writes().length;
    // Wake the reconcile: metadata changes of the MailRelay, and a restarted operator that
    // has no memory of its last applies (it can only compare with the live objects).
    for (let i = 0; i < 3; i++) {
      env.kubectl(['annotate', '--overwrite', 'mailrelay', '-n', NS, 'relay', `test/touch=${i}`]);
      await new Promise((r) => setTimeout(r, 3000));
    }
    await op.stop();
    op = startOperator(env, 'operator-0b');
    await new Promise((r) => setTimeout(r, 20_000));
    const extra = writes().slice(before);
    assert.deepEqual(extra.map((e) => `${e.verb} ${e.requestURI}`), [], 'writes in steady state');
  });

  it('Secrets: the operator read only the referenced Secret and its drain token, by name (point 4)', () => {
    const secretRequests = operatorRequests(env.cp).filter((e) => e.objectRef?.resource === 'secrets');
    assert.ok(secretRequests.length > 0);
    const seen = new Set(secretRequests.map((e) => `${e.verb} ${e.objectRef?.namespace}/${e.objectRef?.name ?? '(all)'}`));
    assert.deepEqual([...seen].filter((s) => !/^(get|create) mail\/(relay-users|relay-drain-token)$/.test(s)), [], `Secret requests: ${[...seen].join(', ')}`);
  });

  it('watches ask for bookmarks and are not cut every 30 s (point 7)', () => {
    const watches = operatorRequests(env.cp).filter((e) => e.verb === 'watch');
    assert.ok(watches.length > 0);
    for (const w of watches) assert.match(w.requestURI, /allowWatchBookmarks=true/, w.requestURI);
    for (const w of watches) assert.match(w.requestURI, /timeoutSeconds=\d+/, w.requestURI);
  });

  it('5: a spec change rolls the pod', async () => {
    const uid = pod('relay-0').metadata.uid;
    apply(relaySpec({ logLevel: 'debug' }));
    await eventually('a new relay-0', () => {
      try { return pod('relay-0').metadata.uid !== uid; } catch { return false; }
    }, 120_000);
    await waitReady('Ready=True after the roll');
    await sendThrough('relay-0', 'carol@example.net');
    await delivered('carol@example.net');
  });

  it('6: kubectl scale down drains the removed pod without stranding mail', async () => {
    env.kubectl(['scale', 'mailrelay', '-n', NS, 'relay', '--replicas=2']);
    await eventually('two ready relays', () => mr().status?.readyReplicas === 2, 120_000);
    // A message taken by relay-1 just before the scale-down removes it.
    await sendThrough('relay-1', 'dave@example.net');
    env.kubectl(['scale', 'mailrelay', '-n', NS, 'relay', '--replicas=1']);
    await delivered('dave@example.net');
    await eventually('relay-1 gone', () => !env.getJson(['pods', '-n', NS]).items.some((p: Obj) => p.metadata.name === 'relay-1'), 120_000);
    const pvc = env.getJson(['pvc', '-n', NS, 'spool-relay-1']);
    assert.notEqual(pvc.metadata.annotations?.['mailrelay.io/spool-state'], 'unverified', 'the spool was proven empty');
    await waitReady('Ready=True at 1 replica');
  });

  it('8: delete --cascade=orphan keeps the children; a re-create adopts them', async () => {
    const stsUid = env.getJson(['statefulset', '-n', NS, 'relay']).metadata.uid;
    env.kubectl(['delete', 'mailrelay', '-n', NS, 'relay', '--cascade=orphan', '--wait=true']);
    await eventually('orphaned', () => (env.getJson(['statefulset', '-n', NS, 'relay']).metadata.ownerReferences ?? []).length === 0, 60_000);
    apply(relaySpec({ logLevel: 'debug' }));
    const uid = await eventually('the new MailRelay', () => mr().metadata.uid as string);
    await eventually('adopted', () => {
      const refs = env.getJson(['statefulset,configmap,service,poddisruptionbudget', '-n', NS, '-l', 'app.kubernetes.io/instance=relay']).items
        .map((o: Obj) => o.metadata.ownerReferences?.[0]?.uid);
      return refs.length >= 4 && refs.every((u: string) => u === uid);
    }, 60_000).catch((err: Error) => { throw new Error(`${err.message}\nconditions: ${JSON.stringify(mr().status?.conditions)}\n${op.output().slice(-2000)}`); });
    assert.equal(env.getJson(['statefulset', '-n', NS, 'relay']).metadata.uid, stsUid, 'the same StatefulSet, not a new one');
    await waitReady('Ready=True after adoption');
  });

  it('7: deleting the MailRelay lets the real garbage collector remove the children', async () => {
    env.kubectl(['delete', 'mailrelay', '-n', NS, 'relay', '--wait=true']);
    await eventually('children collected', () => env.getJson(['statefulset,configmap,service,poddisruptionbudget', '-n', NS, '-l', 'app.kubernetes.io/instance=relay']).items.length === 0, 120_000);
  });
});
