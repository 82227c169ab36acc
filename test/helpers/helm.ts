// Renders Helm charts in tests without a helm binary or a cluster: compiles the
// small Go renderer in test/helm-render (Helm 3's template engine semantics,
// built in GOPATH mode against Debian's sprig) once per source hash, then runs it
// like `helm template`.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** Directory holding the Go sources of the renderer. */
export const HELM_RENDER_SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'helm-render');

/** Where Debian's golang-*-dev packages put their sources (GOPATH mode). */
const DEBIAN_GOPATH = '/usr/share/gocode';

/** Options of one render, mirroring `helm template` flags. */
export interface HelmTemplateOptions {
  /** Release name (.Release.Name). */
  releaseName: string;
  /** Release namespace (.Release.Namespace). */
  namespace: string;
  /** Values objects, each written to a file and passed with -f, later ones winning. */
  values?: object[];
  /** --set key=value pairs (Helm strvals syntax: a.b=1, list[0]=x, l={a,b}; commas separate pairs). */
  set?: Record<string, string>;
  /** --set-string key=value pairs: values stay strings. */
  setString?: Record<string, string>;
  /** Extra API versions for .Capabilities.APIVersions.Has (e.g. "monitoring.coreos.com/v1"). */
  apiVersions?: string[];
  /** --kube-version (default v1.31.0). */
  kubeVersion?: string;
  /** Prepend the chart's crds/ files verbatim, like --include-crds. */
  includeCrds?: boolean;
  /** --show-only: only manifests from these chart-relative paths (shell globs). */
  showOnly?: string[];
}

/** A rendered Kubernetes object, as parsed from the YAML stream. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** One document of the output with the template it came from ("chart/templates/x.yaml"). */
export interface RenderedDocument {
  source: string;
  /** Parsed document; null for a comment-only document. */
  object: KubeObject | null;
}

/** A failed render: message and stderr carry the renderer's error text. */
export class HelmRenderError extends Error {
  /** Builds the error from the renderer's stderr and exit code. */
  constructor(
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(stderr.trim() || `helm-render exited with code ${exitCode}`);
    this.name = 'HelmRenderError';
  }
}

interface ExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  return new Promise((resolvePromise, reject) => {
    execFile(cmd, args, { ...opts, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolvePromise({ stdout, stderr, code: err ? (err.code as number) : 0 });
    });
  });
}

async function sourceHash(): Promise<string> {
  const hash = createHash('sha256');
  const names = (await readdir(HELM_RENDER_SRC)).filter((n) => n.endsWith('.go') && !n.endsWith('_test.go')).sort();
  for (const name of names) {
    hash.update(name).update('\0').update(await readFile(join(HELM_RENDER_SRC, name))).update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function compile(): Promise<string> {
  const dir = join(tmpdir(), 'mailrelay-helm-render', await sourceHash());
  const bin = join(dir, 'helm-render');
  if (await exists(bin)) return bin;
  await mkdir(dir, { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env, GO111MODULE: 'off', GOPATH: DEBIAN_GOPATH, GOFLAGS: '' };
  if (!env.GOCACHE && !env.HOME && !env.XDG_CACHE_HOME) env.GOCACHE = join(tmpdir(), 'mailrelay-go-cache');
  // Build beside the final path and rename, so concurrent test processes never run a half-written binary.
  const partial = `${bin}.${process.pid}.${Date.now()}`;
  const res = await run('go', ['build', '-o', partial, '.'], { cwd: HELM_RENDER_SRC, env });
  if (res.code !== 0) {
    await rm(partial, { force: true });
    throw new Error(`building test/helm-render failed (needs golang-go and golang-github-masterminds-sprig-dev):\n${res.stderr}`);
  }
  await chmod(partial, 0o755);
  await rename(partial, bin);
  return bin;
}

let building: Promise<string> | undefined;

/** Compiles the Go chart renderer (once per process, cached on disk by source hash) and returns its path. */
export function buildHelmRenderer(): Promise<string> {
  building ??= compile().catch((err: unknown) => {
    building = undefined;
    throw err;
  });
  return building;
}

async function renderRaw(chartDir: string, opts: HelmTemplateOptions, extra: string[]): Promise<string> {
  const bin = await buildHelmRenderer();
  const work = await mkdtemp(join(tmpdir(), 'mailrelay-helm-values-'));
  try {
    const args = [opts.releaseName, resolve(chartDir), '--namespace', opts.namespace];
    for (const [i, v] of (opts.values ?? []).entries()) {
      const file = join(work, `values-${i}.json`);
      // JSON is YAML, and keeps strings like "yes" or "1.10" strings.
      await writeFile(file, JSON.stringify(v));
      args.push('-f', file);
    }
    for (const [k, v] of Object.entries(opts.set ?? {})) args.push('--set', `${k}=${v}`);
    for (const [k, v] of Object.entries(opts.setString ?? {})) args.push('--set-string', `${k}=${v}`);
    for (const a of opts.apiVersions ?? []) args.push('--api-versions', a);
    for (const s of opts.showOnly ?? []) args.push('--show-only', s);
    if (opts.kubeVersion) args.push('--kube-version', opts.kubeVersion);
    if (opts.includeCrds) args.push('--include-crds');
    args.push(...extra);
    const res = await run(bin, args);
    if (res.code !== 0) throw new HelmRenderError(res.stderr, res.code);
    return res.stdout;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Renders a chart like `helm template` and returns the multi-document YAML stream. */
export function helmTemplate(chartDir: string, opts: HelmTemplateOptions): Promise<string> {
  return renderRaw(chartDir, opts, []);
}

/** Renders a chart's templates/NOTES.txt, trimmed, with a trailing newline ("" if there is none). */
export function helmNotes(chartDir: string, opts: HelmTemplateOptions): Promise<string> {
  return renderRaw(chartDir, opts, ['--notes']);
}

const SOURCE_HEADER = /^---\n# Source: (.+)\n/gm;

/** Splits `helm template` output into documents, each tagged with its `# Source:` path. */
export function parseRenderedDocuments(text: string): RenderedDocument[] {
  const heads = [...text.matchAll(SOURCE_HEADER)];
  const out: RenderedDocument[] = [];
  heads.forEach((m, i) => {
    const start = (m.index ?? 0) + m[0].length;
    const end = i + 1 < heads.length ? (heads[i + 1]?.index ?? text.length) : text.length;
    const source = m[1] ?? '';
    const parsed = parseAllDocuments(text.slice(start, end));
    // A comment-only document parses to no document at all.
    if (parsed.length === 0) out.push({ source, object: null });
    for (const doc of parsed) {
      if (doc.errors.length > 0) throw new Error(`invalid YAML from ${source}: ${doc.errors[0]?.message}`);
      const obj: unknown = doc.toJS();
      if (obj !== null && (typeof obj !== 'object' || Array.isArray(obj))) {
        throw new Error(`document from ${source} is not a mapping`);
      }
      out.push({ source, object: obj as KubeObject | null });
    }
  });
  return out;
}

/** Renders a chart and returns its objects in output order (comment-only documents dropped). */
export async function helmTemplateObjects(chartDir: string, opts: HelmTemplateOptions): Promise<KubeObject[]> {
  const docs = parseRenderedDocuments(await helmTemplate(chartDir, opts));
  return docs.flatMap((d) => (d.object ? [d.object] : []));
}

/** Returns the one object of a kind (and name, if given); throws if there is not exactly one. */
export function findObject(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const hits = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  if (hits.length !== 1) {
    const have = objects.map((o) => `${o.kind}/${o.metadata?.name}`).join(', ');
    throw new Error(`expected exactly one ${kind}${name ? `/${name}` : ''}, found ${hits.length} (have: ${have})`);
  }
  return hits[0] as KubeObject;
}
