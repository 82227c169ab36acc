// The built image against the pod specs that will run it: the relay StatefulSet the
// operator renders (from the pure builders in operator/desired/, for a MailRelay whose
// smarthost is Postfix's smtp-sink) and the operator Deployment the chart renders. Each is
// run the way a node would (test/helpers/kubelet.ts, image runtime): the image's entrypoint
// with the container's args, as user 65532, on a read-only root filesystem, with the pod's
// volumes at their mount paths. The relay must start, take mail and hand it to smtp-sink;
// the pod's preStop command must exist in the image and drain the relay; the operator's
// entrypoint must answer --help. A mismatch between a pod spec and the image (a path the
// hook calls that the image lacks, a file the user cannot read, a write under the read-only
// root) fails here before a cluster sees it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import nodemailer from 'nodemailer';
import { secretInput } from '../../operator/api/inputs.ts';
import type { MailRelay } from '../../operator/api/mailrelay.ts';
import { buildDrainTokenSecret } from '../../operator/desired/drain-token.ts';
import { buildDesired } from '../../operator/desired/index.ts';
import { MAILRELAY_CLI, RUN_AS_ID, SPOOL_DIR } from '../../operator/desired/layout.ts';
import { waitFor } from '../kube/testutil.ts';
import { startSmtpSink, type SmtpSink } from '../peers/postfix.ts';
import { findObject, helmTemplateObjects } from '../helpers/helm.ts';
import { REPO, builtImage, mountImage, type BuiltImage, type MountedImage } from '../helpers/image.ts';
import { preparePod, rewriteRelayConfig, withHostPorts, type PodProcess, type PreparedPod, type VolumeData } from '../helpers/kubelet.ts';

const USERS = 'app:$2b$10$/cxA/h56p3p6YJVw6CjvheDflgMtS/3GhGOwXq11WQ9FImT70IvPq\n'; // password change-me
const DRAIN_TOKEN = 'smoke-drain-token';
const packageJson = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };

/** The relay's StatefulSet and the data of its volumes, as the operator renders them for `mr`. */
function renderRelay(mr: MailRelay, defaultImage: string): { sts: V1StatefulSet; data: VolumeData } {
  const secrets = { 'relay-users': { users: Buffer.from(USERS) } } as Record<string, Record<string, Buffer>>;
  const objects = buildDesired(mr, {
    secrets: { 'relay-users': secretInput({ stringData: { users: USERS } }) },
    defaultImage,
  });
  const drain = buildDrainTokenSecret(mr, DRAIN_TOKEN) as { metadata: { name: string }; stringData?: Record<string, string>; data?: Record<string, string> };
  secrets[drain.metadata.name] = Object.fromEntries([
    ...Object.entries(drain.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')] as const),
    ...Object.entries(drain.stringData ?? {}).map(([k, v]) => [k, Buffer.from(v)] as const),
  ]);
  const cm = objects.find((o) => o.kind === 'ConfigMap') as { metadata: { name: string }; data: Record<string, string> } | undefined;
  const sts = objects.find((o) => o.kind === 'StatefulSet') as V1StatefulSet | undefined;
  assert.ok(cm && sts);
  return {
    sts,
    data: {
      configMap: async (name) => (name === cm.metadata.name ? cm.data : undefined),
      secret: async (name) => secrets[name],
    },
  };
}

/** Stops a container process if it still runs. */
async function stop(proc: PodProcess | undefined): Promise<void> {
  if (proc && proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
  await proc?.exited;
}

describe('the image runs the relay StatefulSet the operator renders', () => {
  let img: BuiltImage;
  let image: MountedImage;
  let sink: SmtpSink;
  let pod: PreparedPod;
  let relay: PodProcess | undefined;

  // scripts/run-tests.mjs builds the image first; run on its own, this may build it (minutes).
  before(async () => {
    img = await builtImage();
    image = await mountImage(img);
  }, { timeout: 30 * 60_000 });
  before(async () => {
    sink = await startSmtpSink({ dump: true });
    const mr: MailRelay = {
      apiVersion: 'mailrelay.io/v1alpha1',
      kind: 'MailRelay',
      metadata: { name: 'smoke', namespace: 'mail', uid: '0b6f6a8e-2f0e-4d47-9a53-5c3f1d9e7a10', generation: 1 },
      spec: {
        replicas: 1,
        relayNetworks: ['127.0.0.0/8'],
        auth: { usersSecretRef: { name: 'relay-users' }, requireTLS: false },
        delivery: { mode: 'smarthost', smarthost: { host: '127.0.0.1', port: sink.port, tls: 'none' }, retry: { schedule: ['1s'], maxAge: '1h' } },
        drainTimeout: '5s',
      },
    };
    const { sts, data } = renderRelay(mr, img.image);
    const podSpec = sts.spec?.template.spec;
    assert.ok(podSpec);
    pod = await preparePod({ podSpec, claims: (sts.spec?.volumeClaimTemplates ?? []).map((t) => t.metadata?.name ?? ''), data, runtime: { kind: 'image', image }, podName: 'smoke-0' });
  });
  after(async () => {
    await stop(relay);
    await sink?.close();
    pod?.remove();
    await image?.remove();
  });

  it('uses the image as it is: its entrypoint is the CLI the pod spec and its preStop hook name', () => {
    assert.equal(pod.container.image, img.image, 'the operator passes its own image to the relay');
    assert.equal(pod.container.command, undefined, 'the pod spec leaves the entrypoint to the image');
    assert.deepEqual(image.config.Entrypoint, [...MAILRELAY_CLI]);
    assert.equal(image.config.User, `${RUN_AS_ID}:${RUN_AS_ID}`, 'the image runs as the user the pod spec asks for');
    assert.equal(pod.container.securityContext?.readOnlyRootFilesystem, true);
    assert.deepEqual(pod.user, { uid: RUN_AS_ID, gid: RUN_AS_ID });
  });

  it('starts the relay as 65532 on a read-only root with the pod\'s volumes, and passes its readiness probe', async () => {
    rewriteRelayConfig(pod);
    relay = pod.start();
    const probe = pod.container.readinessProbe?.httpGet;
    assert.ok(probe);
    await waitFor(`readiness probe ${probe.path}`, async () => (await fetch(`http://127.0.0.1:${pod.port(String(probe.port))}${probe.path}`)).status === 200, 30_000, 100)
      .catch((err: Error) => { throw new Error(`${err.message}\nrelay output:\n${relay?.out.join('')}`); });
    const status = readFileSync(`/proc/${relay.child.pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${RUN_AS_ID}\\s+${RUN_AS_ID}\\s+${RUN_AS_ID}`, 'm'));
    assert.match(status, new RegExp(`^Gid:\\s+${RUN_AS_ID}\\s`, 'm'));
    assert.equal(readFileSync(`/proc/${relay.child.pid}/cmdline`, 'utf8').split('\0').slice(0, 2).join(' '), MAILRELAY_CLI.join(' '));
  });

  it('writes only where the pod spec gives it a volume: the root is read-only, the spool and /tmp are writable', async () => {
    const probe = pod.exec(['/nodejs/bin/node', '-e', `
      const fs = require('fs');
      for (const dir of ['/app', '/', '/home/nonroot', ${JSON.stringify(SPOOL_DIR)}, '/tmp']) {
        try { fs.writeFileSync(dir + '/.probe', 'x'); fs.unlinkSync(dir + '/.probe'); console.log(dir, 'writable'); }
        catch (e) { console.log(dir, e.code); }
      }`]);
    assert.equal(await probe.exited, 0, probe.out.join(''));
    const lines = probe.out.join('').trim().split('\n').sort();
    assert.deepEqual(lines, ['/ EROFS', '/app EROFS', '/home/nonroot EROFS', '/tmp writable', `${SPOOL_DIR} writable`].sort());
  });

  it('relays mail, with and without AUTH (the users file is a 0440 Secret item the relay user reads), to smtp-sink', async () => {
    const port = pod.port('smtp');
    const plain = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
    await plain.sendMail({ from: 'alice@example.com', to: 'bob@example.net', subject: 'from the image', text: 'hello\n' });
    plain.close();
    const authed = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, auth: { user: 'app', pass: 'change-me' } });
    await authed.sendMail({ from: 'app@example.com', to: 'carol@example.net', subject: 'authenticated', text: 'hi\n' });
    authed.close();
    const msgs = await waitFor('both messages at smtp-sink', () => {
      const got = sink.messages();
      return got.map((m) => m.rcpts).flat().sort().join() === 'bob@example.net,carol@example.net' && got.every((m) => /\n\n(hello|hi)\n$/.test(m.content)) ? got : undefined;
    }, 20_000, 50);
    assert.match(msgs.find((m) => m.rcpts.includes('carol@example.net'))?.content ?? '', /with ESMTPA/);
    // The spool is the relay user's: it wrote its files there as 65532.
    const spool = pod.hostPath(SPOOL_DIR);
    const owned = readdirSync(spool).map((f) => statSync(join(spool, f)).uid);
    assert.ok(owned.length > 0 && owned.every((uid) => uid === RUN_AS_ID), `spool files owned by ${owned.join(',')}`);
  });

  it('has the preStop command in the image, and it drains the relay, which then exits 0', async () => {
    const command = pod.container.lifecycle?.preStop?.exec?.command ?? [];
    assert.ok(command.length >= 2, 'a preStop exec hook');
    const [exe = '', script = ''] = command;
    accessSync(join(image.rootfs, exe), constants.X_OK);
    assert.ok(statSync(join(image.rootfs, script)).isFile(), `${script} is in the image`);
    const preStop = pod.exec(withHostPorts(pod, command));
    assert.equal(await preStop.exited, 0, preStop.out.join(''));
    assert.equal(await relay?.exited, 0, relay?.out.join('').slice(-2000));
    assert.match(relay?.out.join('') ?? '', /"msg":"drain complete"/);
  });
});

describe('the image runs the operator Deployment the chart renders', () => {
  let img: BuiltImage;
  let image: MountedImage;
  let deployment: V1Deployment;

  before(async () => {
    img = await builtImage();
    image = await mountImage(img);
  }, { timeout: 30 * 60_000 });
  before(async () => {
    const objects = await helmTemplateObjects(join(REPO, 'charts', 'mailrelay-operator'), { releaseName: 'mailrelay', namespace: 'mailrelay-system' });
    deployment = findObject(objects, 'Deployment');
  });
  after(async () => { await image?.remove(); });

  it('defaults to the image tag of this version: the chart\'s appVersion is the image\'s version label', () => {
    const container = deployment.spec?.template.spec?.containers[0];
    assert.equal(container?.image, `ghcr.io/mailrelay/mailrelay:${packageJson.version}`);
    assert.equal(image.config.Labels?.['org.opencontainers.image.version'], packageJson.version);
    assert.equal(container?.env?.find((e) => e.name === 'RELAY_IMAGE')?.value, container?.image, 'relays get the same image');
  });

  it('answers --help from the image\'s entrypoint with the Deployment\'s args, user and read-only root', async () => {
    const podSpec = deployment.spec?.template.spec;
    assert.ok(podSpec);
    const pod = await preparePod({ podSpec, data: { configMap: async () => undefined, secret: async () => undefined }, runtime: { kind: 'image', image }, podName: 'mailrelay-operator-0' });
    assert.deepEqual(pod.user, { uid: RUN_AS_ID, gid: RUN_AS_ID });
    assert.equal(pod.container.securityContext?.readOnlyRootFilesystem, true);
    const help = pod.exec([...(image.config.Entrypoint ?? []), ...(pod.container.args ?? []), '--help']);
    const code = await help.exited;
    pod.remove();
    assert.equal(code, 0, help.out.join(''));
    assert.match(help.out.join(''), /^usage: mailrelay operator/m);
  });
});
