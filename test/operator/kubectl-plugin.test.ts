// `kubectl mailrelay NAME queue ...` (issue 13 §1): the plugin finds the MailRelay's pods
// and runs `mailrelay queue ...` in each through the API server's pods/exec. Real parts:
// kubectl 1.32 finds the plugin on PATH and runs it; the plugin talks to the test API
// server with @kubernetes/client-node over the WebSocket exec protocol; each "pod" is a
// real relay with a deferred message, and what exec runs in it is the image's CLI
// (MAILRELAY_CLI) mapped to this checkout, as the kubelet test does.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { MAILRELAY_CLI } from '../../operator/desired/layout.ts';
import { selectorLabels } from '../../operator/desired/labels.ts';
import type { ExecRequest } from '../kube/exec.ts';
import { startFaultServer, type FaultServer } from '../peers/fault-server.ts';
import { startTestRelay } from '../helpers/relay.ts';
import type { RelayHandle } from '../../relay/service.ts';
import { pluginMain } from '../../operator/kubectl-plugin.ts';
import { controlPlaneBin } from '../cluster/control-plane.ts';
import { createMailRelay, createNamespace, minimalSpec, MERGE, startTestCluster, type TestCluster } from './harness.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(REPO, 'bin', 'mailrelay.mjs');
const PLUGIN = join(REPO, 'bin', 'kubectl-mailrelay.mjs');
const NS = 'mail';

interface Run { status: number | null; stdout: string; stderr: string }

/** The plugin in this process (kubectl's own lookup is tested once, below): the same code, without a Node start per call. */
async function plugin(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const sink = (add: (s: string) => void) => ({ write: (c: string | Uint8Array) => { add(c.toString()); return true; } }) as unknown as NodeJS.WritableStream;
  const status = await pluginMain(args, { stdout: sink((c) => { stdout += c; }), stderr: sink((c) => { stderr += c; }) });
  return { status, stdout, stderr };
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

async function send(port: number, to: string): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
  try {
    const info = await t.sendMail({ from: 'a@sender.test', to, subject: 'plugin', text: 'x' });
    return /queued as (\S+)/.exec(info.response)![1]!;
  } finally {
    t.close();
  }
}

describe('kubectl mailrelay', () => {
  let cluster: TestCluster;
  let peer: FaultServer;
  const relays = new Map<string, RelayHandle>();
  const queued = new Map<string, string>();
  const execs: ExecRequest[] = [];
  let env: NodeJS.ProcessEnv;
  let kubeconfig: string;

  before(async () => {
    cluster = await startTestCluster();
    createNamespace(cluster, NS);
    await createMailRelay(cluster, NS, 'edge', minimalSpec());
    await createMailRelay(cluster, NS, 'other', minimalSpec());
    peer = await startFaultServer({ rcptReply: () => '451 4.4.1 Destination is down, try later' });
    const pod = (name: string, instance: string) => ({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name, namespace: NS, labels: { ...selectorLabels({ metadata: { name: instance } }), 'app.kubernetes.io/managed-by': 'mailrelay-operator' } },
      spec: { containers: [{ name: 'relay', image: 'ghcr.io/mailrelay/mailrelay:test' }] },
    });
    for (const [name, instance] of [['edge-0', 'edge'], ['edge-1', 'edge'], ['other-0', 'other']] as const) {
      await cluster.core.createNamespacedPod({ namespace: NS, body: pod(name, instance) });
      await cluster.core.patchNamespacedPodStatus({ name, namespace: NS, body: { status: { phase: 'Running', podIP: '127.0.0.1' } } }, MERGE);
      const relay = await startTestRelay(peer.port, { delivery: { retry: { schedule: [3600], jitter: 0, maxAge: 86400 } } });
      relays.set(name, relay);
      queued.set(name, await send(relay.smtpPort, `${name}@down.test`));
    }
    await peer.waitFor(() => [...relays.values()].every((r) => r.spool.stats().byState.deferred === 1), 15_000, 'one deferred message per relay');
    // The test's kubelet: runs the image's CLI as this checkout's, pointed at that pod's relay.
    cluster.server.onExec((req) => {
      execs.push(req);
      const relay = relays.get(req.pod);
      if (!relay) return { error: `pods "${req.pod}" not found`, code: 404 };
      const [node, cli, ...args] = req.command;
      if (node !== MAILRELAY_CLI[0] || cli !== MAILRELAY_CLI[1]) return { error: `unexpected command ${req.command.join(' ')}`, code: 400 };
      const child: ChildProcess = spawn(process.execPath, [CLI, ...args], {
        env: { ...process.env, MAILRELAY_URL: `http://127.0.0.1:${relay.httpPort}` }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      return { stdout: child.stdout!, stderr: child.stderr!, exitCode: new Promise<number>((r) => child.once('close', (c) => r(c ?? 1))) };
    });
    // kubectl finds plugins as executables named kubectl-<name> on PATH.
    const bin = mkdtempSync(join(tmpdir(), 'kubectl-plugins-'));
    symlinkSync(PLUGIN, join(bin, 'kubectl-mailrelay'));
    kubeconfig = cluster.server.writeKubeconfig();
    env = { KUBECONFIG: kubeconfig, PATH: `${bin}:${process.env.PATH ?? ''}` };
  });
  after(async () => {
    for (const r of relays.values()) await r.close();
    await peer?.close();
    await cluster?.close();
  });

  it('kubectl finds the plugin, and `queue list` runs in every pod of the MailRelay, and only those', async () => {
    // kubectl as CI builds it (scripts/build-control-plane.sh, pinned), the one on PATH otherwise.
    const bin = process.env.MAILRELAY_CLUSTER_BIN ?? controlPlaneBin();
    const kubectl = existsSync(join(bin, 'kubectl')) ? join(bin, 'kubectl') : 'kubectl';
    const r = await run(kubectl, ['mailrelay', '-n', NS, 'edge', 'queue', 'list'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^==> pod edge-0 <==$/m);
    assert.match(r.stdout, /^==> pod edge-1 <==$/m);
    assert.ok(r.stdout.indexOf(queued.get('edge-0')!) > r.stdout.indexOf('edge-0 <=='), 'edge-0\'s message under its header');
    assert.ok(r.stdout.indexOf(queued.get('edge-1')!) > r.stdout.indexOf('edge-1 <=='));
    assert.ok(!r.stdout.includes(queued.get('other-0')!), 'another MailRelay\'s pod is not touched');
    assert.deepEqual(execs.map((e) => [e.pod, e.container]).sort(), [['edge-0', 'relay'], ['edge-1', 'relay']]);
    const logged = cluster.server.requestLog.filter((e) => e.subresource === 'exec');
    assert.ok(logged.length === 2 && logged.every((e) => e.verb === 'create' && e.resource === 'pods'), 'pods/exec, create (what the RBAC docs ask for)');
  });

  it('changes every pod\'s queue (hold --all), reports per pod, and merges --json by pod', async () => {
    const r = await plugin(['--kubeconfig', kubeconfig, '-n', NS, 'edge', 'queue', 'hold', '--all']);
    assert.equal(r.status, 0, r.stderr);
    for (const pod of ['edge-0', 'edge-1']) {
      assert.match(r.stdout, new RegExp(`${queued.get(pod)}: held`));
      assert.equal(relays.get(pod)!.spool.stats().byState.held, 1, `${pod} held`);
    }
    assert.equal(relays.get('other-0')!.spool.stats().byState.held, 0);
    const j = await plugin(['--kubeconfig', kubeconfig, '-n', NS, 'edge', 'queue', 'list', '--json']);
    assert.equal(j.status, 0, j.stderr);
    const byPod = JSON.parse(j.stdout) as Record<string, { messages: { id: string; state: string }[] }>;
    assert.deepEqual(Object.keys(byPod).sort(), ['edge-0', 'edge-1']);
    assert.deepEqual(byPod['edge-0']!.messages.map((m) => [m.id, m.state]), [[queued.get('edge-0'), 'held']]);
  });

  it('a failing command in a pod is reported with its pod and makes the plugin fail', async () => {
    const r = await plugin(['--kubeconfig', kubeconfig, '-n', NS, 'edge', 'queue', 'show', queued.get('edge-0')!]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, new RegExp(`==> pod edge-0 <==\\n[\\s\\S]*message\\s+${queued.get('edge-0')}`));
    assert.match(r.stderr, new RegExp(`edge-1: .*${queued.get('edge-0')}: no such message in the queue`));
    assert.match(r.stderr, /edge-1: exit code 1/);
  });

  it('says what is wrong: no such MailRelay, no pods, a missing command', async () => {
    const missing = await plugin(['--kubeconfig', kubeconfig, '-n', NS, 'nosuch', 'queue', 'list']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /MailRelay mail\/nosuch not found/);
    const usage = await plugin(['--kubeconfig', kubeconfig, '-n', NS, 'edge']);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /usage: kubectl mailrelay/);
    const help = await plugin(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /usage: kubectl mailrelay/);
    const noKube = await plugin(['--kubeconfig', '/nonexistent/kubeconfig', '-n', NS, 'edge', 'queue', 'list']);
    assert.equal(noKube.status, 1);
    assert.match(noKube.stderr, /kubeconfig/);
  });
});
