// The Grafana dashboards: structurally valid for @grafana/schema (tsc checks the shape via
// dashboards.typecheck.ts; this file checks enum members, ids and layout at run time), and
// every query sound PromQL over metrics the relay and the operator really export, filtered
// by the dashboard's variables.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BigValueColorMode, BigValueGraphMode, BigValueJustifyMode, BigValueTextMode, DashboardCursorSync, FieldColorModeId, GraphDrawStyle,
  LegendDisplayMode, SortOrder, StackingMode, ThresholdsMode, TooltipDisplayMode, VariableHide, VariableRefresh, VariableSort,
} from '@grafana/schema';
import type { DashboardLink, VariableType } from '@grafana/schema';
import { CHART } from './chart.ts';
import { typedDashboards } from './dashboards.typecheck.ts';
import { checkExpression, exportedMetrics, parsePromQL, substituteGrafanaVariables } from './promql.ts';

const DIR = join(CHART, 'dashboards');
const VARIABLE_TYPES = ['query', 'datasource', 'custom', 'constant', 'interval', 'textbox', 'adhoc'] as const satisfies readonly VariableType[];
const LINK_TYPES = ['link', 'dashboards'] as const satisfies readonly DashboardLink['type'][];
/** Core panel plugins the dashboards may use (no plugin installs needed). */
const PANEL_TYPES = new Set(['row', 'timeseries', 'stat', 'gauge', 'bargauge', 'table', 'text', 'heatmap', 'state-timeline']);

interface Target { datasource?: { type?: string; uid?: string }; expr?: string; refId?: string; legendFormat?: string }
interface PanelJson {
  id: number;
  type: string;
  title?: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: PanelJson[];
  fieldConfig?: { defaults: { color?: { mode: string }; thresholds?: { mode: string; steps: unknown[] }; custom?: { drawStyle?: string; stacking?: { mode: string } } } };
  options?: { legend?: { displayMode: string }; tooltip?: { mode: string; sort?: string }; colorMode?: string; graphMode?: string; textMode?: string; justifyMode?: string };
}
interface VariableJson { name: string; type: string; query?: string | { query: string }; datasource?: { type?: string; uid?: string }; hide?: number; refresh?: number; sort?: number }
interface DashboardJson {
  uid: string;
  title: string;
  tags: string[];
  schemaVersion: number;
  graphTooltip?: number;
  links?: { type: string }[];
  templating: { list: VariableJson[] };
  panels: PanelJson[];
}

const load = async (file: string) => JSON.parse(await readFile(join(DIR, file), 'utf8')) as DashboardJson;
const files = (await readdir(DIR)).filter((f) => f.endsWith('.json')).sort();
const dashboards = await Promise.all(files.map(async (f) => ({ file: f, d: await load(f) })));

/** Every panel, rows' nested panels included. */
function allPanels(d: DashboardJson): PanelJson[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every PromQL query of a dashboard: panel targets, and the selector inside label_values(...) variables. */
function queries(d: DashboardJson): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(d)) for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr ?? '' });
  for (const v of d.templating.list.filter((x) => x.type === 'query')) {
    const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    const m = /^label_values\((.+),\s*([A-Za-z_]\w*)\)$/.exec(q.trim());
    assert.ok(m, `variable ${v.name}: a label_values(selector, label) query, got ${q}`);
    out.push({ where: `variable ${v.name}`, expr: m[1] ?? '' });
  }
  return out;
}

const enumValues = (e: object) => Object.values(e) as unknown[];

describe('dashboards', async () => {
  const exported = await exportedMetrics();

  it('are all type-checked by dashboards.typecheck.ts', () => {
    assert.deepEqual(Object.keys(typedDashboards).sort(), files);
    assert.deepEqual(files, ['delivery-correctness.json', 'fleet-overview.json', 'operator.json']);
  });

  it('have unique uids and titles, the mailrelay tag, and a current schema version', () => {
    assert.equal(new Set(dashboards.map(({ d }) => d.uid)).size, dashboards.length);
    assert.equal(new Set(dashboards.map(({ d }) => d.title)).size, dashboards.length);
    for (const { file, d } of dashboards) {
      assert.match(d.uid, /^[a-zA-Z0-9_-]{1,40}$/, `${file} uid`);
      assert.ok(d.tags.includes('mailrelay'), `${file} tag`);
      assert.ok(d.schemaVersion >= 36, `${file} schemaVersion`);
      if (d.graphTooltip !== undefined) assert.ok(enumValues(DashboardCursorSync).includes(d.graphTooltip));
      for (const l of d.links ?? []) assert.ok((LINK_TYPES as readonly string[]).includes(l.type), `${file} link type ${l.type}`);
    }
  });

  it('offer datasource, namespace, mailrelay and pod variables (operator: datasource, namespace, pod)', () => {
    for (const { file, d } of dashboards) {
      const names = d.templating.list.map((v) => v.name);
      assert.deepEqual(names, file === 'operator.json' ? ['datasource', 'namespace', 'pod'] : ['datasource', 'namespace', 'mailrelay', 'pod'], file);
      const ds = d.templating.list[0];
      assert.equal(ds?.type, 'datasource');
      assert.equal(ds?.query, 'prometheus');
      for (const v of d.templating.list) {
        assert.ok((VARIABLE_TYPES as readonly string[]).includes(v.type), `${file} ${v.name} type`);
        if (v.type === 'query') assert.deepEqual(v.datasource, { type: 'prometheus', uid: '${datasource}' }, `${file} ${v.name} uses the chosen datasource`);
        if (v.hide !== undefined) assert.ok(enumValues(VariableHide).includes(v.hide));
        if (v.refresh !== undefined) assert.ok(enumValues(VariableRefresh).includes(v.refresh));
        if (v.sort !== undefined) assert.ok(enumValues(VariableSort).includes(v.sort));
      }
    }
  });

  it('lay out panels with unique ids on the 24-column grid, without overlaps', () => {
    for (const { file, d } of dashboards) {
      const panels = allPanels(d);
      assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, `${file} panel ids`);
      const cells = new Map<string, string>();
      for (const p of panels) {
        const { x, y, w, h } = p.gridPos;
        assert.ok(x >= 0 && w > 0 && x + w <= 24 && y >= 0 && h > 0, `${file} "${p.title}" gridPos`);
        for (let i = x; i < x + w; i++) {
          for (let j = y; j < y + h; j++) {
            const prev = cells.get(`${i},${j}`);
            assert.equal(prev, undefined, `${file}: "${p.title}" overlaps "${prev}"`);
            cells.set(`${i},${j}`, p.title ?? '');
          }
        }
      }
    }
  });

  it('use only core panel types and option values @grafana/schema defines', () => {
    for (const { file, d } of dashboards) {
      for (const p of allPanels(d)) {
        const where = `${file} "${p.title}"`;
        assert.ok(PANEL_TYPES.has(p.type), `${where} type ${p.type}`);
        if (p.type === 'row') continue;
        assert.ok(p.title && p.description, `${where} has a title and a description`);
        const def = p.fieldConfig?.defaults;
        if (def?.color) assert.ok(enumValues(FieldColorModeId).includes(def.color.mode), `${where} color mode`);
        if (def?.thresholds) assert.ok(enumValues(ThresholdsMode).includes(def.thresholds.mode), `${where} thresholds mode`);
        if (def?.custom?.drawStyle) assert.ok(enumValues(GraphDrawStyle).includes(def.custom.drawStyle), `${where} drawStyle`);
        if (def?.custom?.stacking) assert.ok(enumValues(StackingMode).includes(def.custom.stacking.mode), `${where} stacking`);
        const o = p.options ?? {};
        if (o.legend) assert.ok(enumValues(LegendDisplayMode).includes(o.legend.displayMode), `${where} legend`);
        if (o.tooltip) assert.ok(enumValues(TooltipDisplayMode).includes(o.tooltip.mode), `${where} tooltip`);
        if (o.tooltip?.sort) assert.ok(enumValues(SortOrder).includes(o.tooltip.sort), `${where} tooltip sort`);
        if (o.colorMode) assert.ok(enumValues(BigValueColorMode).includes(o.colorMode), `${where} colorMode`);
        if (o.graphMode) assert.ok(enumValues(BigValueGraphMode).includes(o.graphMode), `${where} graphMode`);
        if (o.textMode) assert.ok(enumValues(BigValueTextMode).includes(o.textMode), `${where} textMode`);
        if (o.justifyMode) assert.ok(enumValues(BigValueJustifyMode).includes(o.justifyMode), `${where} justifyMode`);
      }
    }
  });

  it('query the chosen datasource with unique refIds', () => {
    for (const { file, d } of dashboards) {
      for (const p of allPanels(d).filter((x) => x.type !== 'row')) {
        const where = `${file} "${p.title}"`;
        assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, where);
        assert.ok(p.targets && p.targets.length > 0, `${where} has queries`);
        assert.equal(new Set(p.targets.map((t) => t.refId)).size, p.targets.length, `${where} refIds`);
        for (const t of p.targets) assert.deepEqual(t.datasource, p.datasource, `${where} ${t.refId} datasource`);
      }
    }
  });

  it('parse as PromQL and use only exported metrics, labels and label values', () => {
    const problems: string[] = [];
    for (const { file, d } of dashboards) {
      for (const q of queries(d)) {
        for (const p of checkExpression(substituteGrafanaVariables(q.expr), exported)) problems.push(`${file} ${q.where}: ${p}\n    ${q.expr}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('filter every series by the dashboard variables, and use no undefined variable', () => {
    for (const { file, d } of dashboards) {
      const defined = new Set([...d.templating.list.map((v) => v.name), '__rate_interval', '__interval', '__range']);
      const filters = file === 'operator.json' ? ['namespace', 'pod'] : ['namespace', 'mailrelay', 'pod'];
      for (const q of queries(d)) {
        for (const m of q.expr.matchAll(/\$\{?(\w+)/g)) assert.ok(defined.has(m[1] ?? ''), `${file} ${q.where}: $${m[1]} is not defined`);
        if (q.where.startsWith('variable')) continue;
        for (const sel of parsePromQL(substituteGrafanaVariables(q.expr)).selectors) {
          const labels = new Set(sel.matchers.filter((m) => m.op === '=~' && m.value === 'value').map((m) => m.label));
          for (const f of filters) assert.ok(labels.has(f), `${file} ${q.where}: ${sel.metric} is not filtered by ${f}=~"$${f}"`);
        }
      }
    }
  });

  it('show what each dashboard promises', () => {
    const uses = (file: string) => {
      const d = dashboards.find((x) => x.file === file)?.d;
      assert.ok(d);
      return queries(d).map((q) => q.expr).join('\n');
    };
    const fleet = uses('fleet-overview.json');
    for (const re of [/mailrelay_inbound_messages_total/, /mailrelay_recipients_total\{outcome="delivered"/, /sum by \(outcome\) \(rate\(mailrelay_recipients_total/,
      /mailrelay_queue_messages/, /mailrelay_queue_oldest_message_age_seconds/,
      /histogram_quantile\(0\.99, sum by \(le\) \(rate\(mailrelay_delivery_duration_seconds_bucket/, /histogram_quantile\(0\.99, sum by \(le\) \(rate\(mailrelay_queue_residence_seconds_bucket/]) {
      assert.match(fleet, re, `fleet overview: ${re}`);
    }
    const delivery = uses('delivery-correctness.json');
    for (const re of [/sum by \(class\) \(rate\(mailrelay_rcpt_552_total/, /sum by \(command, code\) \(rate\(mailrelay_smtp_replies_total/,
      /sum by \(reason\) \(rate\(mailrelay_retries_total/, /mailrelay_partial_deliveries_total.*\/ sum by \(namespace, mailrelay\) \(rate\(mailrelay_delivery_attempts_total/,
      /mailrelay_learned_recipient_limit\{/]) {
      assert.match(delivery, re, `delivery correctness: ${re}`);
    }
    const operator = uses('operator.json');
    for (const re of [/sum by \(result\) \(rate\(mailrelay_operator_reconcile_total/, /result="error"/,
      /histogram_quantile\(0\.95, sum by \(le\) \(rate\(mailrelay_operator_reconcile_duration_seconds_bucket/, /max by \(ready\) \(mailrelay_operator_relays/,
      /mailrelay_operator_leader/]) {
      assert.match(operator, re, `operator: ${re}`);
    }
  });
});
