// Durations as Kubernetes users write them ("90s", "1h30m", "120h"): the subset of Go's
// time.ParseDuration that CEL's duration() also accepts, so a CRD rule and this parser
// agree on every value the schema's pattern lets through.

/** The schema pattern for a duration: one or more <number><unit> with unit ms, s, m or h. */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';

const UNIT_SECONDS: Readonly<Record<string, number>> = { ms: 0.001, s: 1, m: 60, h: 3600 };
const WHOLE = new RegExp(DURATION_PATTERN);
const PART = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;

/** Parses a duration into seconds; null if the text is not a duration. */
export function parseDuration(text: string): number | null {
  if (!WHOLE.test(text)) return null;
  let seconds = 0;
  for (const m of text.matchAll(PART)) seconds += Number(m[1]) * (UNIT_SECONDS[m[2] ?? ''] ?? Number.NaN);
  return Number.isFinite(seconds) ? Math.round(seconds * 1000) / 1000 : null;
}
