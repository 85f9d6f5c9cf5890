// Reads the Prometheus text exposition format (what GET /metrics answers) into samples and metric types.
export interface Scrape {
  /** `name{label="value",...}` (labels sorted by name) -> value. */
  samples: Map<string, number>;
  /** Metric family name -> counter, gauge, histogram, ... */
  types: Map<string, string>;
  /** Every sample's labels, with its name. */
  series: { name: string; labels: Record<string, string>; value: number }[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`);
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}

/** Parses a scrape; a line that fits neither a comment nor a sample fails the test. */
export function parseScrape(text: string): Scrape {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const series: Scrape['series'] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type) types.set(type[1]!, type[2]!);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    // Values are Go floats: +Inf, -Inf and NaN in any letter case (prom-client writes `Nan`).
    const text = m[3]!.toLowerCase();
    const value = text === '+inf' ? Infinity : text === '-inf' ? -Infinity : text === 'nan' ? NaN : Number(text);
    if (Number.isNaN(value) && text !== 'nan') throw new Error(`not a number: ${line}`);
    samples.set(seriesKey(m[1]!, labels), value);
    series.push({ name: m[1]!, labels, value });
  }
  return { samples, types, series };
}

/** A sample's value; a series not exported counts as 0 (counters appear at their first increment). */
export function valueOf(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  return s.samples.get(seriesKey(name, labels)) ?? 0;
}
