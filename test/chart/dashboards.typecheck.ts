// Type-checks the dashboard JSON against @grafana/schema's Dashboard type (tsc runs over
// test/, so `npm run typecheck` fails on a structural mistake). JSON imports widen every
// string to `string`, and no string can satisfy a union like 'palette-classic' | 'fixed' or
// a string enum, so the check is against Widened<Dashboard>: the same shape with enum and
// literal types widened to their base type. dashboards.test.ts then checks at run time
// that each such value is a member of the enum @grafana/schema exports.
import type { Dashboard } from '@grafana/schema';
import fleet from '../../charts/mailrelay-operator/dashboards/fleet-overview.json' with { type: 'json' };
import delivery from '../../charts/mailrelay-operator/dashboards/delivery-correctness.json' with { type: 'json' };
import operator from '../../charts/mailrelay-operator/dashboards/operator.json' with { type: 'json' };

/** T with string/number/boolean literal and enum types widened; objects and arrays keep their structure. */
export type Widened<T> = T extends string
  ? string
  : T extends number
    ? number
    : T extends boolean
      ? boolean
      : T extends readonly (infer U)[]
        ? Widened<U>[]
        : T extends object
          ? { [K in keyof T]: Widened<T[K]> }
          : T;

/** Every dashboard file the chart ships, by file name; a new file must be added here to be type-checked. */
export const typedDashboards: Record<string, Widened<Dashboard>> = {
  'fleet-overview.json': fleet,
  'delivery-correctness.json': delivery,
  'operator.json': operator,
};
