// End to end through a simulated kubelet (test/helpers/kubelet.ts): proves that what the
// operator writes is what the relay runs, twice: with both programs run from the built
// image's root filesystem (the image's entrypoint, user 65532, read-only root, each volume at
// its mount path; the operator as the chart's Deployment renders it, with a kubeconfig for the
// in-repo API server), and from this checkout (the operator as its CLI, the relay with the
// image's paths mapped to the checkout). The relay is started exactly as the StatefulSet and
// ConfigMap the operator creates say. Only what a node provides
// differently is rewritten: the container ports to free loopback ports and the listen
// addresses to 127.0.0.1 (the pod IP). Then mail goes through it to Postfix's smtp-sink (the
// MailRelay's smarthost), the relay's /metrics are scraped, the readiness probe decides when
// the pod is Ready, and the MailRelay must end up Ready=True. At the end the preStop hook
// drains it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, type V1Deployment, type V1StatefulSet } from '@kubernetes/client-node';
import nodemailer from 'nodemailer';
import { startSmtpSink, type SmtpSink } from '../peers/postfix.ts';
import { waitFor } from '../kube/testutil.ts';
import { findObject, helmTemplateObjects } from '../helpers/helm.ts';
import { REPO, builtImage, mountImage, type MountedImage } from '../helpers/image.ts';
import { preparePod, rewriteRelayConfig, withHostPorts, type PodProcess, type PodRuntime, type PreparedPod } from '../helpers/kubelet.ts';
import {
  createMailRelay, createNamespace, getMailRelay, conditionOf, startTestCluster, waitForCondition, MERGE, type TestCluster,
} from './harness.ts';

const CLI = join(REPO, 'bin', 'mailrelay.mjs');
const LEASE = 'mailrelay-operator-leader';
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

for (const runtimeKind of ['image', 'checkout'] as const) {
  describe(`simulated kubelet (${runtimeKind}): the operator's StatefulSet and ConfigMap run a real relay`, () => {
    let cluster: TestCluster;
    let operator: Proc | PodProcess;
    let sink: SmtpSink;
    let image: MountedImage | undefined;
    let pod: PreparedPod | undefined;
    let operatorPod: PreparedPod | undefined;
    let relay: PodProcess | undefined;
    let metricsUrl = '';
    const ns = 'mail';

    // scripts/run-tests.mjs builds the image first; run on its own, this may build it (minutes).
    before(async () => {
      if (runtimeKind === 'image') image = await mountImage(await builtImage());
    }, { timeout: 30 * 60_000 });
    before(async () => {
      cluster = await startTestCluster();
      createNamespace(cluster, ns);
      sink = await startSmtpSink({ dump: true });
      const kubeconfig = cluster.server.writeKubeconfig();
      const flags = ['--metrics-addr', '127.0.0.1:0', '--retry-period', '0.5', '--renew-deadline', '3', '--lease-duration', '5'];
      if (image) {
        // The operator as the chart deploys it, from the image. The node hands it the
        // kubeconfig, where a cluster would mount a service account token.
        const kubeDir = mkdtempSync(join(tmpdir(), 'kubelet-kubeconfig-'));
        copyFileSync(kubeconfig, join(kubeDir, 'kubeconfig'));
        chmodSync(join(kubeDir, 'kubeconfig'), 0o644);
        chmodSync(kubeDir, 0o755);
        const objects = await helmTemplateObjects(join(REPO, 'charts', 'mailrelay-operator'), {
          releaseName: 'mailrelay-operator', namespace: ns,
          values: [{ replicaCount: 1, watchNamespace: ns, image: { tag: 'e2e' }, extraArgs: flags, extraEnv: [{ name: 'KUBECONFIG', value: '/var/run/kubeconfig/kubeconfig' }] }],
        });
        const podSpec = (findObject(objects, 'Deployment') as unknown as V1Deployment).spec?.template.spec;
        assert.ok(podSpec);
        assert.equal(podSpec.containers[0]?.env?.find((e) => e.name === 'LEADER_ELECTION_LEASE_NAME')?.value, LEASE);
        operatorPod = await preparePod({
          podSpec, runtime: { kind: 'image', image }, podName: 'mailrelay-operator-0', namespace: ns,
          data: { configMap: async () => undefined, secret: async () => undefined },
          nodeMounts: [{ hostPath: kubeDir, containerPath: '/var/run/kubeconfig' }],
        });
        operator = operatorPod.start();
      } else {
        operator = run(process.execPath, [CLI, 'operator', '--namespace', ns, '--leader-elect', ...flags], {
          ...process.env, KUBECONFIG: kubeconfig, POD_NAMESPACE: ns, POD_NAME: 'mailrelay-operator-0', LEADER_ELECTION_LEASE_NAME: LEASE,
          RELAY_IMAGE: 'ghcr.io/mailrelay/mailrelay:e2e', LOG_LEVEL: 'info',
        });
      }
      const started = await waitFor('the operator to start', () => operator.out.join('').split('\n').map((l) => {
        try { return JSON.parse(l) as { msg?: string; metrics?: string }; } catch { return undefined; }
      }).find((l) => l?.msg === 'operator started'), 30_000)
        .catch((err: Error) => { throw new Error(`${err.message}\noperator output:\n${operator.out.join('').slice(-3000)}`); });
      metricsUrl = `http://${started.metrics}`;
    });
    after(async () => {
      if (relay?.child.exitCode === null) relay.child.kill('SIGKILL');
      if (operator.child.exitCode === null) operator.child.kill('SIGKILL');
      await sink.close();
      await cluster.close();
      await relay?.exited;
      if (operator.child.exitCode === null && operator.child.signalCode === null) await operator.exited;
      pod?.remove();
      operatorPod?.remove();
      await image?.remove();
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
      const runtime: PodRuntime = image ? { kind: 'image', image } : { kind: 'checkout' };
      pod = await preparePod({
        podSpec,
        claims: (sts.spec?.volumeClaimTemplates ?? []).map((t) => t.metadata?.name ?? ''),
        runtime,
        podName: 'relay-0',
        data: {
          configMap: async (name) => (await cluster.core.readNamespacedConfigMap({ name, namespace: ns })).data,
          secret: async (name) => {
            const secret = await cluster.core.readNamespacedSecret({ name, namespace: ns }).catch(() => undefined);
            return secret && Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
          },
        },
      });
      rewriteRelayConfig(pod);
      relay = pod.start();
      assert.ok(relay.child.pid);
    });

    it('reports the pod Ready once the readiness probe passes, and the MailRelay becomes Ready=True', async () => {
      assert.ok(pod);
      const probe = pod.container.readinessProbe?.httpGet;
      assert.ok(probe);
      const url = `http://127.0.0.1:${pod.port(String(probe.port))}${probe.path}`;
      await waitFor(`readiness probe ${probe.path}`, async () => (await fetch(url)).status === 200, 20_000, 100)
        .catch((err: Error) => { throw new Error(`${err.message}\nrelay output:\n${relay?.out.join('')}`); });
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
      const smtpPort = pod.port('smtp');
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
      const url = `http://127.0.0.1:${pod.port('metrics')}/metrics`;
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
      const command = pod.container.lifecycle?.preStop?.exec?.command ?? [];
      assert.ok(command.length > 0, 'a preStop exec hook');
      const preStop = pod.exec(withHostPorts(pod, command));
      assert.equal(await preStop.exited, 0, preStop.out.join(''));
      await waitFor('the relay stops serving', async () => {
        try {
          await fetch(`http://127.0.0.1:${pod?.port('metrics')}/healthz`);
          return false;
        } catch {
          return true;
        }
      }, 15_000);
      relay?.child.kill('SIGTERM');
      assert.equal(await relay?.exited, 0, relay?.out.join('').slice(-2000));

      operator.child.kill('SIGTERM');
      assert.equal(await operator.exited, 0, operator.out.join('').slice(-2000));
      const lease = await cluster.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE, namespace: ns });
      assert.equal(lease.spec?.holderIdentity, '', 'released on shutdown');
      assert.ok((await getMailRelay(cluster, ns, 'relay')).status);
    });
  });
}
