// Generates docs/config.md from the relay config schema (relay/config.ts), so the
// reference can never drift from the contract. `npx tsx scripts/gen-config-doc.ts > docs/config.md`;
// relay/config-doc.test.ts fails when the committed file is stale.
import { relayConfigJsonSchema } from '../relay/config.ts';

interface Node {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, Node>;
  additionalProperties?: Node | boolean;
  items?: Node;
  enum?: unknown[];
  anyOf?: Node[];
  minimum?: number;
  maximum?: number;
}

function typeOf(n: Node): string {
  if (n.enum) return n.enum.map((e) => JSON.stringify(e)).join(' \\| ');
  if (n.anyOf) return n.anyOf.map(typeOf).join(' \\| ');
  if (n.type === 'array') return `list of ${n.items ? typeOf(n.items) : 'any'}`;
  if (n.type === 'object' && n.additionalProperties && typeof n.additionalProperties === 'object' && !n.properties) return `map of ${typeOf(n.additionalProperties)}`;
  return Array.isArray(n.type) ? n.type.join(' \\| ') : (n.type ?? 'any');
}

function rows(n: Node, prefix: string, out: string[]): void {
  for (const [key, child] of Object.entries(n.properties ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    const def = child.default === undefined || (typeof child.default === 'object' && child.default !== null && !Array.isArray(child.default))
      ? '' : `\`${JSON.stringify(child.default)}\``;
    if (child.properties) {
      if (child.description) out.push(`| \`${path}\` | object | | ${child.description} |`);
      rows(child, path, out);
    } else {
      out.push(`| \`${path}\` | ${typeOf(child)} | ${def} | ${(child.description ?? '').replace(/\|/g, '\\|')} |`);
    }
    if (child.additionalProperties && typeof child.additionalProperties === 'object' && child.additionalProperties.properties) {
      rows(child.additionalProperties, `${path}.<name>`, out);
    }
  }
}

/** Renders the Markdown reference. */
export function configDoc(): string {
  const out: string[] = [
    '# Relay configuration reference',
    '',
    'Generated from `relay/config.ts` by `npx tsx scripts/gen-config-doc.ts > docs/config.md`; do not edit by hand.',
    '',
    'The relay reads one YAML or JSON file (`mailrelay relay --config FILE`). Every field is optional;',
    'defaults are shown. Durations are seconds, sizes bytes. Secrets are never inline: fields ending in',
    '`File` name files, which the operator mounts from Kubernetes Secrets. The relay validates the file',
    'at start and names every bad field (e.g. `inbound.relayNetworks.1: not a valid CIDR`).',
    '`mailrelay config-schema` prints the same schema as JSON Schema. Flags `--smtp-port`, `--http-port`',
    'and `--spool` override the file.',
    '',
    '| field | type | default | what it is for |',
    '|---|---|---|---|',
  ];
  rows(relayConfigJsonSchema() as Node, '', out);
  out.push('', 'A minimal local example is `examples/relay-local.yaml`.', '');
  return out.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(configDoc());
