// `mailrelay operator` without a usable cluster fails at once with one clear line (issue 13
// §8), instead of logging "watch failed; restarting" dozens of times a second: no kubeconfig
// at all (client-node then falls back to http://localhost:8080), an API server that does
// not answer, and one that has no MailRelay CRD.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApiServer } from '../kube/apiserver.ts';
import { runCli, type CliRun } from '../helpers/cli.ts';

function operator(env: NodeJS.ProcessEnv): Promise<CliRun> {
  return runCli(['operator', '--metrics-addr', '127.0.0.1:0'], {
    env, unset: ['KUBECONFIG', 'KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT'], timeoutMs: 30_000,
  });
}

function assertOneClearLine(r: { status: number | null; stdout: string; stderr: string }, re: RegExp): void {
  assert.equal(r.status, 1, `exit 1; stderr: ${r.stderr}; stdout: ${r.stdout.slice(0, 500)}`);
  assert.doesNotMatch(r.stdout, /watch failed/, 'no restart loop');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, re);
}

describe('mailrelay operator fails fast without a usable cluster', () => {
  it('no kubeconfig anywhere', async () => {
    const r = await operator({ HOME: mkdtempSync(join(tmpdir(), 'no-kube-home-')) });
    assertOneClearLine(r, /^mailrelay operator: no kubeconfig: set KUBECONFIG, create ~\/\.kube\/config, or run in a pod with a service account$/);
  });

  it('an API server that does not answer', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    const api = await startApiServer({ port });
    const kubeconfig = api.writeKubeconfig();
    await api.close();
    const r = await operator({ KUBECONFIG: kubeconfig });
    assertOneClearLine(r, new RegExp(`^mailrelay operator: cannot reach the Kubernetes API server at http://127\\.0\\.0\\.1:${port} \\(kubeconfig ${kubeconfig.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\): connection refused \\(ECONNREFUSED\\)$`));
  });

  it('a cluster without the MailRelay CRD', async (t) => {
    const api = await startApiServer();
    t.after(() => api.close());
    const r = await operator({ KUBECONFIG: api.writeKubeconfig() });
    assertOneClearLine(r, /^mailrelay operator: the MailRelay CRD is not installed \(mailrelays\.mailrelay\.io\/v1alpha1 not served by http:\/\/127\.0\.0\.1:\d+\): kubectl apply --server-side -f crds\/$/);
  });
});
