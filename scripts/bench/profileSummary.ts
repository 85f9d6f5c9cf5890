// Summarises a V8 .cpuprofile (from `npm run bench -- --profile DIR`, which runs Tessera under node --cpu-prof):
// self time by function and by package, and inclusive time of the heaviest frames.
// Usage: tsx scripts/bench/profileSummary.ts FILE.cpuprofile [top=25] [busiest-seconds]
// With busiest-seconds, only the samples of the busiest window of that length count (skips start-up and idle).
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg, windowArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: tsx scripts/bench/profileSummary.ts FILE.cpuprofile [top]\n');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
let from = 0;
let to = prof.samples.length;
if (windowArg) {
  // the window of `windowArg` seconds with the most non-idle time
  const idleId = prof.nodes.find((n) => n.callFrame.functionName === '(idle)')?.id;
  const times: number[] = [];
  let t = 0;
  for (const d of prof.timeDeltas) times.push((t += d));
  const span = Number(windowArg) * 1e6;
  const busy = (k: number) => (prof.samples[k] === idleId ? 0 : (prof.timeDeltas[k] ?? 0));
  let best = -1;
  for (let i = 0, j = 0, b = 0; i < times.length; i++) {
    while (j < times.length && times[j]! - times[i]! < span) b += busy(j++);
    if (b > best) {
      best = b;
      from = i;
      to = j;
    }
    b -= busy(i);
  }
}
const selfUs = new Map<number, number>();
for (let i = from; i < to; i++) {
  const id = prof.samples[i]!;
  selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

const pkg = (url: string) => {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.includes('/src/')) return `src/${url.split('/src/')[1]!.split('/')[0]}`;
  if (url.startsWith('node:')) return url;
  return url ? url.split('/').slice(-2).join('/') : '(native/vm)';
};
const label = (n: Node) => `${n.callFrame.functionName || '(anon)'} ${pkg(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;

const self = new Map<string, number>();
const selfPkg = new Map<string, number>();
const incl = new Map<string, number>();
for (const [id, us] of selfUs) {
  const n = byId.get(id)!;
  self.set(label(n), (self.get(label(n)) ?? 0) + us);
  selfPkg.set(pkg(n.callFrame.url), (selfPkg.get(pkg(n.callFrame.url)) ?? 0) + us);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur)!);
    if (!seen.has(l)) {
      seen.add(l);
      incl.set(l, (incl.get(l) ?? 0) + us);
    }
  }
}
const show = (title: string, m: Map<string, number>) => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${((100 * v) / total).toFixed(1).padStart(6)}%  ${k}\n`);
  }
};
process.stdout.write(`${file}: ${(total / 1e6).toFixed(2)} s sampled\n`);
show('self time by package', selfPkg);
show('self time by function', self);
show('inclusive time by function', incl);
