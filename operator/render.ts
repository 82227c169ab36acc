// `mailrelay render -f mailrelay.yaml [--servicemonitor]`: prints, offline, the objects
// the operator would create for the MailRelays in the files, as multi-document YAML.
// Secrets found in the same files are used (for validation and the config hash);
// a referenced Secret that is not there only draws a warning, since it may well exist
// in the cluster. An invalid MailRelay fails with one line per bad field.
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { referencedSecretKeys, secretInput, type MailRelayInputs, type SecretInput, type SecretLike } from './api/inputs.ts';
import { API_VERSION, InvalidMailRelayError, KIND, validateMailRelay, withDefaults, type MailRelay, type ValidationProblem } from './api/mailrelay.ts';
import { buildDesired } from './desired/index.ts';

/** Image used for unset spec.image fields when neither --image nor MAILRELAY_IMAGE is given. */
export const FALLBACK_IMAGE = 'ghcr.io/mailrelay/mailrelay:latest';

/** Usage text of the render command. */
export const RENDER_USAGE = `usage: mailrelay render -f FILE [-f FILE ...] [options]

Prints the objects the operator would create for each MailRelay in FILEs
(use - for stdin), without a cluster. Secrets in the same files are used.

options:
  -f, --filename FILE   a YAML file with MailRelay (and Secret) documents
  -n, --namespace NS    namespace for documents without one (default: default)
      --servicemonitor  render as if the Prometheus Operator CRDs are installed
                        (adds the ServiceMonitor and PrometheusRule)
      --image REF       the operator image, used for unset spec.image fields
                        (default: $MAILRELAY_IMAGE or ${FALLBACK_IMAGE})
  -h, --help            this text
`;

/** A render failure; exitCode 2 for usage errors, 1 for invalid input. */
export class RenderError extends Error {
  /** Wraps the message and the process exit code to use. */
  constructor(message: string, readonly exitCode: 1 | 2) {
    super(message);
    this.name = 'RenderError';
  }
}

/** Options of renderDocuments. */
export interface RenderOptions {
  /** Namespace for documents without one. */
  namespace: string;
  /** The operator image (inputs.defaultImage). */
  defaultImage: string;
  /** Render as if the monitoring.coreos.com CRDs exist. */
  serviceMonitor: boolean;
}

type Doc = { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };

const isDoc = (d: unknown): d is Doc => typeof d === 'object' && d !== null && !Array.isArray(d);

/** Renders parsed documents: the children of every MailRelay among them, plus warnings. Throws RenderError if any MailRelay is invalid. */
export function renderDocuments(docs: readonly unknown[], options: RenderOptions): { yaml: string; warnings: string[] } {
  const objects = docs.filter(isDoc);
  const nsOf = (d: Doc) => (typeof d.metadata?.namespace === 'string' ? d.metadata.namespace : options.namespace);
  const relays = objects.filter((d) => d.kind === KIND && d.apiVersion === API_VERSION) as unknown as MailRelay[];
  if (relays.length === 0) throw new RenderError(`no ${API_VERSION} ${KIND} found in the input`, 1);
  const secrets = objects.filter((d) => d.kind === 'Secret' && d.apiVersion === 'v1' && typeof d.metadata?.name === 'string');
  const warnings: string[] = [];
  const failures: string[] = [];
  const out: string[] = [];
  for (const raw of relays) {
    const mr: MailRelay = { ...raw, metadata: { ...(raw.metadata ?? {}), namespace: nsOf(raw) } };
    const id = `${KIND} ${mr.metadata.namespace}/${String(mr.metadata.name)}`;
    const found: Record<string, SecretInput> = {};
    let refs: ReturnType<typeof referencedSecretKeys> = [];
    try {
      refs = referencedSecretKeys(withDefaults(mr.spec));
    } catch {
      // An invalid spec: validateMailRelay below reports it.
    }
    for (const s of secrets) {
      const name = String(s.metadata?.name);
      if (nsOf(s) !== mr.metadata.namespace) continue;
      found[name] = secretInput(s as SecretLike, refs.filter((r) => r.name === name && r.reveal).map((r) => r.key));
    }
    const problems: ValidationProblem[] = [];
    for (const p of validateMailRelay(mr, { secrets: found })) {
      if (p.reason === 'SecretNotFound') warnings.push(`${id}: ${p.field}: ${p.message} in the input; rendered with placeholders (the operator checks it in the cluster)`);
      else problems.push(p);
    }
    // Placeholders for Secrets not in the input, so the rest can still be shown.
    for (const r of refs) {
      if (secrets.some((s) => s.metadata?.name === r.name && nsOf(s) === mr.metadata.namespace)) continue;
      const p = found[r.name] ?? { keys: {}, revealed: {} };
      found[r.name] = {
        ...p,
        keys: { ...p.keys, [r.key]: 'unknown' },
        revealed: r.reveal ? { ...p.revealed, [r.key]: `<${r.key} from Secret ${r.name}>` } : p.revealed ?? {},
      };
    }
    if (problems.length > 0) {
      failures.push(...problems.map((p) => `${id}: ${p.field}: ${p.message} (${p.reason})`));
      continue;
    }
    const inputs: MailRelayInputs = {
      secrets: found,
      defaultImage: options.defaultImage,
      capabilities: { serviceMonitor: options.serviceMonitor, prometheusRule: options.serviceMonitor },
    };
    try {
      const children = buildDesired(mr, inputs);
      const owner = mr.metadata.uid ? '' : ' (no ownerReferences: the MailRelay has no uid until the API server stores it)';
      out.push(`# ${id}: ${children.length} objects${owner}\n`
        + children.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n'));
    } catch (err) {
      if (!(err instanceof InvalidMailRelayError)) throw err;
      failures.push(...err.problems.map((p) => `${id}: ${p.field}: ${p.message} (${p.reason})`));
    }
  }
  if (failures.length > 0) throw new RenderError(`invalid ${KIND}:\n${failures.map((f) => `  ${f}`).join('\n')}`, 1);
  return { yaml: out.join('---\n'), warnings };
}

/** Side effects renderCommand uses; tests replace them. */
export interface RenderIo {
  /** Reads a file, or stdin for "-". */
  readFile: (path: string) => Promise<string>;
  /** Receives warnings, one line each. */
  warn: (line: string) => void;
  /** Environment (MAILRELAY_IMAGE). */
  env: Readonly<Record<string, string | undefined>>;
}

async function readInput(path: string): Promise<string> {
  if (path !== '-') return readFile(path, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const defaultIo: RenderIo = { readFile: readInput, warn: (l) => process.stderr.write(`warning: ${l}\n`), env: process.env };

/** Runs `mailrelay render` with argv (after "render"; a leading "render" is skipped) and returns the YAML to print. Throws RenderError. */
export async function renderCommand(argv: readonly string[], io: Partial<RenderIo> = {}): Promise<string> {
  const { readFile: read, warn, env } = { ...defaultIo, ...io };
  const args = argv[0] === 'render' ? argv.slice(1) : [...argv];
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        filename: { type: 'string', short: 'f', multiple: true },
        namespace: { type: 'string', short: 'n' },
        servicemonitor: { type: 'boolean' },
        image: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    });
  } catch (err) {
    throw new RenderError(`${(err as Error).message}\n\n${RENDER_USAGE}`, 2);
  }
  const v = parsed.values;
  if (v.help) return RENDER_USAGE;
  if (!v.filename || v.filename.length === 0) throw new RenderError(`-f FILE is required\n\n${RENDER_USAGE}`, 2);
  const docs: unknown[] = [];
  for (const file of v.filename) {
    let text: string;
    try {
      text = await read(file);
    } catch (err) {
      throw new RenderError(`${file}: ${(err as Error).message}`, 1);
    }
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new RenderError(`${file}: not valid YAML: ${doc.errors[0]?.message ?? ''}`, 1);
      docs.push(doc.toJS());
    }
  }
  const { yaml, warnings } = renderDocuments(docs, {
    namespace: v.namespace ?? 'default',
    defaultImage: v.image ?? env.MAILRELAY_IMAGE ?? FALLBACK_IMAGE,
    serviceMonitor: v.servicemonitor ?? false,
  });
  for (const w of warnings) warn(w);
  return yaml;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  renderCommand(process.argv.slice(2)).then(
    (out) => process.stdout.write(out),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = err instanceof RenderError ? err.exitCode : 1;
    },
  );
}
