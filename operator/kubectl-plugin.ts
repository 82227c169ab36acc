// `kubectl mailrelay`: a kubectl plugin (an executable named kubectl-mailrelay on PATH)
// that finds a MailRelay's pods and runs a `mailrelay` command in each of them through the
// API server's pods/exec, e.g. `kubectl mailrelay -n mail outbound queue list`. The
// command inside the pod is the image's CLI (MAILRELAY_CLI), which talks to its relay over
// loopback, so no token leaves the pod. Output is grouped per pod; with --json the pods'
// JSON answers are merged into one object keyed by pod name.
import { Writable } from 'node:stream';
import { ApiException, CoreV1Api, CustomObjectsApi, Exec, KubeConfig, type V1Pod, type V1Status } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from './api/mailrelay.ts';
import { MAILRELAY_CLI } from './desired/layout.ts';
import { selectorString } from './desired/labels.ts';
import { RELAY_CONTAINER } from './desired/statefulset.ts';

/** Usage of the plugin. */
export const PLUGIN_USAGE = `usage: kubectl mailrelay [options] NAME queue <list|show|retry|hold|release|delete> [args]
       kubectl mailrelay [options] NAME version

Runs a mailrelay command in every relay pod of the MailRelay NAME, through the API
server's pods/exec (you need get on mailrelays, list on pods and create on pods/exec),
and prints each pod's output under "==> pod POD <==". With --json, prints one JSON object
keyed by pod. Exits 1 if the command failed in any pod. Examples:
  kubectl mailrelay -n mail outbound queue list --state deferred
  kubectl mailrelay -n mail outbound queue retry --destination example.com
  kubectl mailrelay -n mail outbound --pod outbound-1 queue show 01J...

options (before NAME):
  -n, --namespace NS     namespace of the MailRelay (default: the context's)
      --context NAME     kubeconfig context
      --kubeconfig FILE  kubeconfig file (default: $KUBECONFIG or ~/.kube/config)
      --pod POD          only this pod
  -h, --help             this text
`;

const COMMANDS = new Set(['queue', 'version']);

/** A mistake in the plugin's own arguments (exit 2). */
class PluginUsageError extends Error {}

interface PluginArgs {
  namespace?: string;
  context?: string;
  kubeconfig?: string;
  pod?: string;
  name: string;
  command: string[];
}

function parsePluginArgs(argv: string[]): PluginArgs | 'help' {
  const out: Partial<PluginArgs> = {};
  let i = 0;
  // Bounded: every iteration consumes at least one argument.
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') return 'help';
    const eq = /^(--[a-z]+)=(.*)$/.exec(a);
    const flag = eq ? eq[1]! : a;
    const value = (): string => {
      if (eq) return eq[2]!;
      const v = argv[++i];
      if (v === undefined) throw new PluginUsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === '-n' || flag === '--namespace') out.namespace = value();
    else if (flag === '--context') out.context = value();
    else if (flag === '--kubeconfig') out.kubeconfig = value();
    else if (flag === '--pod') out.pod = value();
    else if (a.startsWith('-')) throw new PluginUsageError(`unknown option ${a}`);
    else break;
  }
  const name = argv[i];
  if (name === undefined) throw new PluginUsageError('the name of a MailRelay is required');
  const command = argv.slice(i + 1);
  if (command.length === 0 || !COMMANDS.has(command[0]!)) throw new PluginUsageError(command.length === 0 ? 'a command is required (queue or version)' : `unknown command ${command[0]!}`);
  return { ...out, name, command };
}

function loadKubeConfig(a: PluginArgs): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (a.kubeconfig) kc.loadFromFile(a.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new Error(`cannot load the kubeconfig${a.kubeconfig ? ` ${a.kubeconfig}` : ''}: ${(err as Error).message}`);
  }
  if (a.context) {
    if (!kc.getContextObject(a.context)) throw new Error(`kubeconfig has no context ${a.context}`);
    kc.setCurrentContext(a.context);
  }
  if (!kc.getCurrentCluster()) throw new Error('no usable kubeconfig: set KUBECONFIG, or --kubeconfig, or create ~/.kube/config');
  return kc;
}

function describeApiError(err: unknown, what: string): Error {
  if (err instanceof ApiException) {
    if (err.code === 404) return new Error(`${what} not found`);
    if (err.code === 401 || err.code === 403) return new Error(`not allowed to read ${what} (HTTP ${err.code})`);
    return new Error(`reading ${what} failed: HTTP ${err.code}`);
  }
  const cause = (err as { cause?: { code?: string } }).cause?.code;
  return new Error(`cannot reach the Kubernetes API server${cause ? ` (${cause})` : ''}: ${(err as Error).message}`);
}

/** The result of running the command in one pod. */
interface PodRun {
  pod: string;
  stdout: string;
  stderr: string;
  exitCode: number;
}

function collector(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({ write(chunk: Buffer, _enc, cb) { chunks.push(Buffer.from(chunk)); cb(); } }),
    text: () => Buffer.concat(chunks).toString('utf8'),
  };
}

// The exit code a remote command reported: 0 on Success, the ExitCode cause on NonZeroExitCode.
function exitCodeOf(status: V1Status | undefined): number {
  if (status?.status === 'Success') return 0;
  const cause = status?.details?.causes?.find((c) => c.reason === 'ExitCode')?.message;
  return cause !== undefined && /^\d+$/.test(cause) ? Number(cause) : 1;
}

async function execIn(kc: KubeConfig, namespace: string, pod: string, command: string[]): Promise<PodRun> {
  const out = collector();
  const err = collector();
  let status: V1Status | undefined;
  const ws = await new Exec(kc).exec(namespace, pod, RELAY_CONTAINER, command, out.stream, err.stream, null, false, (s) => { status = s; });
  await new Promise<void>((resolve) => {
    if (ws.readyState === ws.CLOSED) resolve();
    else ws.once('close', () => resolve());
  });
  const stderr = err.text() + (status?.status === 'Failure' && status.reason !== 'NonZeroExitCode' ? `${status.message ?? 'exec failed'}\n` : '');
  return { pod, stdout: out.text(), stderr, exitCode: exitCodeOf(status) };
}

/** Runs the plugin; returns the exit code. */
export async function pluginMain(argv: string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process): Promise<number> {
  let a: PluginArgs | 'help';
  try {
    a = parsePluginArgs(argv);
  } catch (err) {
    if (!(err instanceof PluginUsageError)) throw err;
    io.stderr.write(`kubectl mailrelay: ${err.message}\n\n${PLUGIN_USAGE}`);
    return 2;
  }
  if (a === 'help') {
    io.stdout.write(PLUGIN_USAGE);
    return 0;
  }
  try {
    const kc = loadKubeConfig(a);
    const namespace = a.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
    const what = `MailRelay ${namespace}/${a.name}`;
    await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name: a.name })
      .catch((err: unknown) => { throw describeApiError(err, what); });
    const list = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace, labelSelector: selectorString({ metadata: { name: a.name } }) })
      .catch((err: unknown) => { throw describeApiError(err, `the pods of ${what}`); });
    let pods: V1Pod[] = [...list.items].sort((x, y) => (x.metadata?.name ?? '').localeCompare(y.metadata?.name ?? ''));
    if (a.pod) pods = pods.filter((p) => p.metadata?.name === a.pod);
    if (pods.length === 0) throw new Error(a.pod ? `${what} has no pod ${a.pod}` : `${what} has no pods`);
    const json = a.command.includes('--json');
    const merged: Record<string, unknown> = {};
    let failed = false;
    for (const p of pods) {
      const pod = p.metadata!.name!;
      if (p.status?.phase !== 'Running') {
        io.stderr.write(`${pod}: skipped, the pod is ${p.status?.phase ?? 'not running'}\n`);
        failed = true;
        continue;
      }
      const r = await execIn(kc, namespace, pod, [...MAILRELAY_CLI, ...a.command]).catch((err: unknown): PodRun => ({
        pod, stdout: '', stderr: `exec failed: ${(err as Error).message}\n`, exitCode: 1,
      }));
      if (json && r.exitCode === 0) {
        try {
          merged[pod] = JSON.parse(r.stdout);
        } catch {
          merged[pod] = r.stdout;
        }
      } else if (!json) {
        io.stdout.write(`==> pod ${pod} <==\n${r.stdout}`);
      }
      for (const line of r.stderr.split('\n').filter((l) => l !== '')) io.stderr.write(`${pod}: ${line}\n`);
      if (r.exitCode !== 0) {
        io.stderr.write(`${pod}: exit code ${r.exitCode}\n`);
        failed = true;
      }
    }
    if (json) io.stdout.write(`${JSON.stringify(merged, null, 2)}\n`);
    return failed ? 1 : 0;
  } catch (err) {
    io.stderr.write(`kubectl mailrelay: ${(err as Error).message}\n`);
    return 1;
  }
}
