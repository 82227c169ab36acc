// Renders Helm charts in tests with real helm (`helm template`), the pinned release that
// scripts/build-control-plane.sh builds into its cache (run-tests.mjs runs it first and
// sets MAILRELAY_CLUSTER_BIN). Real helm is the authority on what a chart renders to; an
// earlier in-repo renderer built on Debian's sprig is gone (test/cluster/README.md says why).
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** The fixture chart of the helper's own tests. */
export const FIXTURE_CHART = resolve(dirname(fileURLToPath(import.meta.url)), 'testdata', 'fixture-chart');
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

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
  /** --include-crds. */
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

/** A failed render: message and stderr carry helm's error text. */
export class HelmRenderError extends Error {
  /** Builds the error from the renderer's stderr and exit code. */
  constructor(
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(stderr.trim() || `helm exited with code ${exitCode}`);
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

/** The helm binary (building it, once, when run-tests.mjs has not). */
export function helmBinary(): string {
  let bin = process.env.MAILRELAY_CLUSTER_BIN;
  if (!bin || !existsSync(join(bin, 'helm'))) {
    bin = execFileSync('bash', [join(REPO, 'scripts', 'build-control-plane.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1) ?? '';
    process.env.MAILRELAY_CLUSTER_BIN = bin;
  }
  return join(bin, 'helm');
}

const NOTES_MANIFEST = 'zz-notes-as-manifest.yaml';

/**
 * A copy of the chart whose NOTES.txt is rendered as a manifest: `helm template` never
 * prints NOTES, and `helm install --dry-run` takes no --api-versions or --kube-version.
 * The NOTES text becomes a named template, printed as the `text` of one YAML document,
 * so the same engine with the same capabilities renders it.
 */
async function withNotesAsManifest(chart: string, work: string): Promise<string> {
  const copy = join(work, 'chart');
  await cp(chart, copy, { recursive: true });
  const notesFile = join(copy, 'templates', 'NOTES.txt');
  const notes = existsSync(notesFile) ? await readFile(notesFile, 'utf8') : '';
  await rm(notesFile, { force: true });
  await writeFile(join(copy, 'templates', NOTES_MANIFEST), `{{- define "test.notes-as-manifest" }}${notes}{{ end }}\nkind: Notes\ntext: {{ include "test.notes-as-manifest" . | toJson }}\n`);
  return copy;
}

/** Kubernetes version the renders assume unless told (.Capabilities.KubeVersion). */
const DEFAULT_KUBE_VERSION = 'v1.31.0';

async function renderRaw(chartDir: string, opts: HelmTemplateOptions, command: 'template' | 'notes'): Promise<string> {
  const bin = helmBinary();
  const work = await mkdtemp(join(tmpdir(), 'mailrelay-helm-values-'));
  try {
    let chart = resolve(chartDir);
    if (command === 'notes') chart = await withNotesAsManifest(chart, work);
    const args = ['template', opts.releaseName, chart, '--namespace', opts.namespace];
    if (command === 'notes') args.push('--show-only', `templates/${NOTES_MANIFEST}`);
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
    args.push('--kube-version', opts.kubeVersion ?? DEFAULT_KUBE_VERSION);
    if (opts.includeCrds) args.push('--include-crds');
    // A private home: no repositories, plugins or registry logins of the machine's user.
    const env = { PATH: process.env.PATH, HOME: work, HELM_CACHE_HOME: join(work, 'cache'), HELM_CONFIG_HOME: join(work, 'config'), HELM_DATA_HOME: join(work, 'data') };
    const res = await run(bin, args, { env });
    if (res.code !== 0) throw new HelmRenderError(res.stderr, res.code);
    if (command === 'template') return res.stdout;
    const doc = parseRenderedDocuments(res.stdout)[0]?.object as { text?: string } | null | undefined;
    const notes = doc?.text?.trim() ?? '';
    return notes === '' ? '' : `${notes}\n`;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Renders a chart like `helm template` and returns the multi-document YAML stream. */
export function helmTemplate(chartDir: string, opts: HelmTemplateOptions): Promise<string> {
  return renderRaw(chartDir, opts, 'template');
}

/** Renders a chart's templates/NOTES.txt, trimmed, with a trailing newline ("" if there is none). */
export function helmNotes(chartDir: string, opts: HelmTemplateOptions): Promise<string> {
  return renderRaw(chartDir, opts, 'notes');
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
