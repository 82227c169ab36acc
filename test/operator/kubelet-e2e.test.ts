// End to end through a simulated kubelet: proves that what the operator writes is what
// the relay runs. The operator runs as its CLI (`mailrelay operator`, a child process
// with a kubeconfig). From the StatefulSet and ConfigMap it creates, the relay is started
// exactly as the pod spec says: the image's entrypoint (node /app/bin/mailrelay.mjs) with
// the container's args and env, each volumeMount a temp dir populated from its volume
// (the projected ConfigMap and Secret items, an emptyDir, the spool claim). Only what a
// node provides differently is rewritten: mount-path prefixes to those temp dirs, the
// container ports to free loopback ports, and the listen addresses to 127.0.0.1 (the
// pod IP). Then mail goes through it to Postfix's smtp-sink (the MailRelay's smarthost),
// the relay's /metrics are scraped, the readiness probe decides when the pod is Ready,
// and the MailRelay must end up Ready=True. At the end the preStop hook drains it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoordinationV1Api, type V1Container, type V1StatefulSet } from '@kubernetes/client-node';
import nodemailer from 'nodemailer';
import { parse, stringify } from 'yaml';
import { freePort, startSmtpSink, type SmtpSink } from '../peers/postfix.ts';
import { waitFor } from '../kube/testutil.ts';
import {
  createMailRelay, createNamespace, getMailRelay, conditionOf, startTestCluster, waitForCondition, MERGE, type TestCluster,
} from './harness.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'bin', 'mailrelay.mjs');
/** The image's paths, mapped to this checkout (the Dockerfile copies the repository to /app). */
const IMAGE_PATHS: [string, string][] = [['/nodejs/bin/node', process.execPath], ['/app/', `${REPO}/`]];
const USERS = 'app:$2b$10$/cxA/h56p3p6YJVw6CjvheDflgMtS/3GhGOwXq11WQ9FImT70IvPq\n'; // password change-me

interface Proc { child: ChildProcess; out: string[]; exited: Promise<number | null> }

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b.toString()));
  child.stderr?.on('data', (b: Buffer) => out.push(b.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out, exited };
}

/** Replaces a leading mount path (longest first) in a string. */
function remap(value: string, mounts: Map<string, string>): string {
  for (const [from, to] of [...mounts].sort((a, b) => b[0].length - a[0].length)) {
    if (value === from || value.startsWith(`${from}/`)) return to + value.slice(from.length);
  }
  return value;
}

function remapDeep(v: unknown, mounts: Map<string, string>): unknown {
  if (typeof v === 'string') return remap(v, mounts);
  if (Array.isArray(v)) return v.map((x) => remapDeep(x, mounts));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, remapDeep(x, mounts)]));
  return v;
}

/** What the simulated kubelet started for one pod. */
interface Pod {
  proc: Proc;
  container: V1Container;
  /** containerPort -> host port. */
  ports: Map<number, number>;
  mounts: Map<string, string>;
}

describe('simulated kubelet: the operator\'s StatefulSet and ConfigMap run a real relay', () => {
  let cluster: TestCluster;
  let operator: Proc;
  let sink: SmtpSink;
  let pod: Pod | undefined;
  let metricsUrl = '';
  const ns = 'mail';

  before(async () => {
    cluster = await startTestCluster();
    createNamespace(cluster, ns);
    sink = await startSmtpSink({ dump: true });
    const kubeconfig = cluster.server.writeKubeconfig();
    operator = run(process.execPath, [CLI, 'operator', '--namespace', ns, '--leader-elect', '--metrics-addr', '127.0.0.1:0', '--retry-period', '0.5', '--renew-deadline', '3', '--lease-duration', '5'], {
      ...process.env, KUBECONFIG: kubeconfig, POD_NAMESPACE: ns, POD_NAME: 'mailrelay-operator-0', LEADER_ELECTION_LEASE_NAME: 'mailrelay-operator-leader',
      RELAY_IMAGE: 'ghcr.io/mailrelay/mailrelay:e2e', LOG_LEVEL: 'info',
    });
    const started = await waitFor('the operator to start', () => operator.out.join('').split('\n').map((l) => {
      try { return JSON.parse(l) as { msg?: string; metrics?: string }; } catch { return undefined; }
    }).find((l) => l?.msg === 'operator started'), 30_000);
    metricsUrl = `http://${started.metrics}`;
  });
  after(async () => {
    pod?.proc.child.kill('SIGKILL');
    if (operator.child.exitCode === null) operator.child.kill('SIGKILL');
    await sink.close();
    await cluster.close();
  });

  it('serves /healthz and /readyz, and leads', async () => {
    assert.equal((await fetch(`${metricsUrl}/healthz`)).status, 200);
    await waitFor('ready', async () => (await fetch(`${metricsUrl}/readyz`)).status === 200, 10_000);
    await waitFor('leader', async () => /^mailrelay_operator_leader 1$/m.test(await (await fetch(`${metricsUrl}/metrics`)).text()), 10_000);
  });

  it('creates the children of a smarthost MailRelay', async () => {
    await cluster.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'relay-users' }, stringData: { users: USERS } } });
    await createMailRelay(cluster, ns, 'relay', {
      replicas: 1,
      relayNetworks: ['127.0.0.0/8'],
      auth: { usersSecretRef: { name: 'relay-users' }, requireTLS: false },
      delivery: { mode: 'smarthost', smarthost: { host: '127.0.0.1', port: sink.port, tls: 'none' }, retry: { schedule: ['1s'], maxAge: '1h' } },
      drainTimeout: '5s',
    });
    await waitFor('the StatefulSet', () => cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns }), 15_000);
    const mr = await waitForCondition(cluster, ns, 'relay', 'Ready', 'False', 'ReplicasNotReady');
    assert.equal(conditionOf(mr, 'Degraded')?.status, 'False');
  });

  it('starts the relay exactly as the pod spec says', async () => {
    const sts: V1StatefulSet = await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns });
    const podSpec = sts.spec?.template.spec;
    const container = podSpec?.containers[0];
    assert.ok(podSpec && container);
    assert.equal(container.image, 'ghcr.io/mailrelay/mailrelay:e2e', 'RELAY_IMAGE reached the pod spec');
    assert.equal(container.command, undefined, 'the image entrypoint runs');
    const root = mkdtempSync(join(tmpdir(), 'kubelet-'));
    const mounts = new Map<string, string>();
    for (const m of container.volumeMounts ?? []) {
      const dir = join(root, m.name);
      mkdirSync(dir, { recursive: true });
      mounts.set(m.mountPath, dir);
      const volume = podSpec.volumes?.find((v) => v.name === m.name);
      if (volume?.projected) {
        for (const source of volume.projected.sources ?? []) {
          const write = (path: string, data: Buffer) => {
            mkdirSync(dirname(join(dir, path)), { recursive: true });
            writeFileSync(join(dir, path), data, { mode: volume.projected?.defaultMode ?? 0o644 });
          };
          if (source.configMap) {
            const cm = await cluster.core.readNamespacedConfigMap({ name: source.configMap.name ?? '', namespace: ns });
            for (const item of source.configMap.items ?? []) write(item.path, Buffer.from(cm.data?.[item.key] ?? '', 'utf8'));
          }
          if (source.secret) {
            const secret = await cluster.core.readNamespacedSecret({ name: source.secret.name ?? '', namespace: ns });
            for (const item of source.secret.items ?? []) write(item.path, Buffer.from(secret.data?.[item.key] ?? '', 'base64'));
          }
        }
      } else {
        // emptyDir, or the volumeClaimTemplate (the spool): an empty directory.
        assert.ok(volume?.emptyDir || sts.spec?.volumeClaimTemplates?.some((t) => t.metadata?.name === m.name), `volume ${m.name}`);
      }
    }
    const ports = new Map<number, number>();
    for (const p of container.ports ?? []) ports.set(p.containerPort, await freePort());

    // The relay reads its config from the config mount: rewrite its paths, ports and listen addresses there.
    const args = (container.args ?? []).map((a) => remap(a, mounts));
    const configFile = args[args.indexOf('--config') + 1] ?? '';
    const config = remapDeep(parse((await cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns })).data?.['relay.yaml'] ?? ''), mounts) as {
      inbound: { port: number; host?: string }; http: { port: number; host?: string };
    };
    config.inbound.port = ports.get(config.inbound.port) ?? assert.fail('inbound.port is not a container port');
    config.http.port = ports.get(config.http.port) ?? assert.fail('http.port is not a container port');
    config.inbound.host = '127.0.0.1';
    config.http.host = '127.0.0.1';
    writeFileSync(configFile, stringify(config));

    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: mounts.get('/tmp') ?? root, TMPDIR: mounts.get('/tmp') ?? root };
    for (const e of container.env ?? []) env[e.name] = e.value ?? '';
    const [node, cli] = IMAGE_PATHS.map(([, to]) => to) as [string, string];
    pod = { proc: run(node, [join(cli, 'bin', 'mailrelay.mjs'), ...args], env), container, ports, mounts };
    assert.ok(pod.proc.child.pid);
  });

  it('reports the pod Ready once the readiness probe passes, and the MailRelay becomes Ready=True', async () => {
    assert.ok(pod);
    const probe = pod.container.readinessProbe?.httpGet;
    assert.ok(probe);
    const portNumber = pod.container.ports?.find((p) => p.name === probe.port)?.containerPort ?? Number(probe.port);
    const url = `http://127.0.0.1:${pod.ports.get(portNumber)}${probe.path}`;
    await waitFor(`readiness probe ${probe.path}`, async () => (await fetch(url)).status === 200, 20_000, 100)
      .catch((err: Error) => { throw new Error(`${err.message}\nrelay output:\n${pod?.proc.out.join('')}`); });
    // The kubelet marks the pod ready; the StatefulSet controller counts it.
    await cluster.apps.patchNamespacedStatefulSetStatus({
      name: 'relay', namespace: ns,
      body: { status: { observedGeneration: 1, replicas: 1, readyReplicas: 1, availableReplicas: 1, updatedReplicas: 1, currentReplicas: 1 } },
    }, MERGE);
    const mr = await waitForCondition(cluster, ns, 'relay', 'Ready', 'True', 'ReplicasReady', 15_000);
    assert.equal(mr.status?.readyReplicas, 1);
    assert.equal(mr.status?.smarthost, `127.0.0.1:${sink.port}`);
  });

  it('relays mail to the smarthost, with and without AUTH (the users file came from the Secret mount)', async () => {
    assert.ok(pod);
    const smtpPort = pod.ports.get(pod.container.ports?.find((p) => p.name === 'smtp')?.containerPort ?? 0) ?? 0;
    const plain = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, secure: false, ignoreTLS: true });
    await plain.sendMail({ from: 'alice@example.com', to: 'bob@example.net', subject: 'through the operator', text: 'hello\n' });
    plain.close();
    const authed = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, secure: false, ignoreTLS: true, auth: { user: 'app', pass: 'change-me' } });
    await authed.sendMail({ from: 'app@example.com', to: 'carol@example.net', subject: 'authenticated', text: 'hi\n' });
    authed.close();
    // A dump file is written as its transaction goes on: poll until both are complete.
    const msgs = await waitFor('both messages at the smarthost', () => {
      const got = sink.messages();
      const rcpts = got.map((m) => m.rcpts).flat().sort();
      return rcpts.join() === 'bob@example.net,carol@example.net' && got.every((m) => /\n\n(hello|hi)\n$/.test(m.content)) ? got : undefined;
    }, 20_000, 50);
    const carol = msgs.find((m) => m.rcpts.includes('carol@example.net'));
    assert.match(carol?.content ?? '', /with ESMTPA/, 'AUTH succeeded: the Received header says ESMTPA');
    assert.doesNotMatch(msgs.find((m) => m.rcpts.includes('bob@example.net'))?.content ?? '', /with ESMTPA/);
  });

  it('exposes the relay metrics the operator and the dashboards read', async () => {
    assert.ok(pod);
    const url = `http://127.0.0.1:${pod.ports.get(9090)}/metrics`;
    const text = await waitFor('delivered and an empty queue', async () => {
      const t = await (await fetch(url)).text();
      return /^mailrelay_queue_messages\{state="queued"\} 0$/m.test(t) && /^mailrelay_recipients_total\{[^}]*\} [1-9]/m.test(t) ? t : undefined;
    }, 20_000);
    assert.match(text, /^mailrelay_draining 0$/m);
    const op = await (await fetch(`${metricsUrl}/metrics`)).text();
    assert.match(op, /^mailrelay_operator_reconcile_total\{result="success"\} [1-9]/m);
    assert.match(op, /^mailrelay_operator_relays\{ready="True"\} 1$/m);
  });

  it('the preStop hook drains the relay, and SIGTERM stops the operator and releases its Lease', async () => {
    assert.ok(pod);
    const command = (pod.container.lifecycle?.preStop?.exec?.command ?? []).map((a) => {
      for (const [from, to] of IMAGE_PATHS) if (a.startsWith(from)) return to + a.slice(from.length);
      return a.replace('http://127.0.0.1:9090', `http://127.0.0.1:${pod?.ports.get(9090)}`);
    });
    assert.ok(command.length > 0, 'a preStop exec hook');
    const preStop = run(command[0] ?? '', command.slice(1), { PATH: process.env.PATH });
    assert.equal(await preStop.exited, 0, preStop.out.join(''));
    await waitFor('the relay stops serving', async () => {
      try {
        await fetch(`http://127.0.0.1:${pod?.ports.get(9090)}/healthz`);
        return false;
      } catch {
        return true;
      }
    }, 15_000);
    pod.proc.child.kill('SIGTERM');

    operator.child.kill('SIGTERM');
    assert.equal(await operator.exited, 0, operator.out.join('').slice(-2000));
    const lease = await cluster.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'mailrelay-operator-leader', namespace: ns });
    assert.equal(lease.spec?.holderIdentity, '', 'released on shutdown');
    assert.ok((await getMailRelay(cluster, ns, 'relay')).status);
  });
});
