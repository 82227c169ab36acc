// The generated part of docs/crd.md: every spec field (type, default, description) and
// every cross-field rule, from the same sources as the CRD. crd-docs.test.ts fails when
// the section in docs/crd.md is stale. Regenerate in place with:
//   npx tsx operator/api/crd-docs.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { CROSS_FIELD_RULES } from './rules.ts';
import { specJsonSchema, type JsonSchema } from './json-schema.ts';

/** Path of the document, relative to the repository root. */
export const CRD_DOC = 'docs/crd.md';
/** Markers around the generated section. */
export const BEGIN = '<!-- BEGIN GENERATED: npx tsx operator/api/crd-docs.ts -->';
/** End marker of the generated section. */
export const END = '<!-- END GENERATED -->';

function typeOf(node: JsonSchema): string {
  if (node['x-kubernetes-int-or-string'] === true) return 'int or string';
  if (node.type === 'array') return `[]${node.items ? typeOf(node.items) : ''}`;
  if (node.type === 'object' && typeof node.additionalProperties === 'object') return `map[string]${typeOf(node.additionalProperties)}`;
  if (node.enum) return (node.enum as string[]).join(' | ');
  return node.type ?? '';
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function rows(node: JsonSchema, path: string, out: string[]): void {
  const required = new Set(node.required ?? []);
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const p = `${path}.${name}`;
    const def = child.default === undefined ? '' : `\`${JSON.stringify(child.default)}\``;
    const req = required.has(name) ? ' (required)' : '';
    out.push(`| \`${p}\` | ${cell(typeOf(child))} | ${def} | ${cell(child.description ?? '')}${req} |`);
    if (child['x-kubernetes-preserve-unknown-fields'] === true) continue;
    rows(child, p, out);
    if (child.items) rows(child.items, `${p}[]`, out);
  }
}

/** The generated markdown section (between BEGIN and END). */
export function renderFieldReference(): string {
  const fields: string[] = ['| field | type | default | description |', '|---|---|---|---|'];
  rows(specJsonSchema(), 'spec', fields);
  const rules = ['| rule | applies to | CEL | message |', '|---|---|---|---|'];
  for (const r of CROSS_FIELD_RULES) {
    rules.push(`| \`${r.id}\` | \`${r.field}\` | \`${cell(r.cel)}\` | ${cell(r.message)}${r.holds ? '' : ' (on update only)'} |`);
  }
  return [BEGIN, '', '### Spec fields', '', ...fields, '', '### Cross-field rules', '', ...rules, '', END].join('\n');
}

/** docs/crd.md with its generated section replaced. */
export function updateDoc(text: string): string {
  const start = text.indexOf(BEGIN), end = text.indexOf(END);
  if (start < 0 || end < start) throw new Error(`${CRD_DOC}: markers not found`);
  return text.slice(0, start) + renderFieldReference() + text.slice(end + END.length);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const url = new URL(`../../${CRD_DOC}`, import.meta.url);
  writeFileSync(url, updateDoc(readFileSync(url, 'utf8')));
}
