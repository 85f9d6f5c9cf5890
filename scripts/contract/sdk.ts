// npm run contract:sdk: generates TypeScript clients from openapi/identity.yaml with the generators users reach
// for, each the way its documentation shows, and compiles every output with `tsc --strict --noEmit`.
//   openapi-fetch  openapi-typescript's `paths` types + openapi-fetch, with a small usage file calling the API
//   hey-api        @hey-api/openapi-ts with the fetch client, its SDK grouped in one class per tag: the v1
//                  operations must come out as Jeon's interfaces and methods (InvitationApi.invite, ...)
//   orval          orval, `client: 'fetch'`, `mode: 'tags-split'` (one folder per tag) and a model folder
// Options: `--only NAME[,NAME]` runs some of them; `--keep` keeps the temporary folder (its tsconfig.json and
// generator config files are what a user would copy); `--doc PATH` checks another document.
// Exit 0 only when every generator succeeded and every output compiled without a diagnostic.
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parse } from 'yaml';
import { HTTP_METHODS, type Json, type JsonObject, binPath, deref, isObject, root, runNode, seconds } from './common.js';

const argv = process.argv.slice(2);
function option(name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}
const docPath = resolve(root, option('--doc') ?? 'openapi/identity.yaml');
const keep = argv.includes('--keep');

/** The compiler options the outputs must satisfy: a typical strict browser/bundler project. */
const TSCONFIG = {
  compilerOptions: {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: 'ES2022',
    module: 'ESNext',
    moduleResolution: 'Bundler',
    lib: ['ES2022', 'DOM', 'DOM.Iterable'],
    types: [],
  },
  include: ['**/*.ts'],
  exclude: ['node_modules'],
};

interface Step {
  name: string;
  ok: boolean;
  ms: number;
  log: string;
}

interface Outcome {
  generator: string;
  steps: Step[];
  diagnostics: string[];
  files: number;
}

// ---------------------------------------------------------------- openapi-typescript + openapi-fetch usage file

const doc = parse(readFileSync(docPath, 'utf8')) as JsonObject;

/** A value of the schema's TypeScript type: required properties only, the first enum/const, placeholders otherwise. */
function sample(schema: Json, depth = 0): Json {
  const s = deref(doc, schema);
  if (!isObject(s) || depth > 8) return null;
  if ('const' in s) return s.const as Json;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0] as Json;
  if ('default' in s) return s.default as Json;
  for (const k of ['oneOf', 'anyOf'] as const) if (Array.isArray(s[k]) && s[k].length > 0) return sample(s[k][0] as Json, depth + 1);
  if (Array.isArray(s.allOf)) {
    const parts = s.allOf.map((p) => sample(p, depth + 1));
    return parts.every(isObject) ? Object.assign({}, ...parts) : (parts[0] ?? null);
  }
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
  switch (type) {
    case 'string':
      return 'x';
    case 'integer':
    case 'number':
      return typeof s.minimum === 'number' ? s.minimum : 0;
    case 'boolean':
      return false;
    case 'array':
      return [];
    case 'null':
      return null;
    default: {
      const out: JsonObject = {};
      const props = isObject(s.properties) ? s.properties : {};
      for (const name of Array.isArray(s.required) ? s.required : []) out[String(name)] = sample(props[String(name)] ?? {}, depth + 1);
      return out;
    }
  }
}

interface Call {
  method: string;
  path: string;
  init: JsonObject;
}

/** The call's second argument: required path and query parameters, and a JSON body when there is one. */
function callFor(path: string, method: string, op: JsonObject, item: JsonObject): Call {
  const params: Record<string, JsonObject> = {};
  const all = [...(Array.isArray(item.parameters) ? item.parameters : []), ...(Array.isArray(op.parameters) ? op.parameters : [])];
  for (const raw of all) {
    const p = deref(doc, raw);
    if (!isObject(p) || typeof p.name !== 'string' || typeof p.in !== 'string') continue;
    if (p.in !== 'path' && p.required !== true) continue;
    (params[p.in] ??= {})[p.name] = sample(p.schema ?? { type: 'string' });
  }
  const init: JsonObject = {};
  if (Object.keys(params).length > 0) init.params = params;
  const body = deref(doc, op.requestBody ?? null);
  const json = isObject(body) && isObject(body.content) ? body.content['application/json'] : undefined;
  if (isObject(json)) init.body = sample(json.schema ?? {});
  return { method: method.toUpperCase(), path, init };
}

/** store-invite (v2) by preference, the first POST with a JSON body otherwise; plus a GET with a path parameter. */
function discoverCalls(): Call[] {
  const ops: { path: string; method: string; op: JsonObject; item: JsonObject }[] = [];
  for (const [path, item] of Object.entries(isObject(doc.paths) ? doc.paths : {})) {
    if (!isObject(item)) continue;
    for (const method of HTTP_METHODS) if (isObject(item[method])) ops.push({ path, method, op: item[method] as JsonObject, item });
  }
  const hasJsonBody = (o: JsonObject) => {
    const b = deref(doc, o.requestBody ?? null);
    return isObject(b) && isObject(b.content) && 'application/json' in b.content;
  };
  const post =
    ops.find((o) => o.op.operationId === 'storeInviteV2') ??
    ops.find((o) => o.method === 'post' && o.path.endsWith('/v2/store-invite')) ??
    ops.find((o) => o.method === 'post' && hasJsonBody(o.op));
  const get = ops.find((o) => o.method === 'get' && o.path.includes('{') && !o.op.deprecated) ?? ops.find((o) => o.method === 'get');
  return [post, get].filter((o) => o !== undefined).map((o) => callFor(o.path, o.method, o.op, o.item));
}

function usageFile(calls: Call[]): string {
  const servers = Array.isArray(doc.servers) ? doc.servers : [];
  const baseUrl =
    isObject(servers[0]) && typeof servers[0].url === 'string' && !servers[0].url.includes('{') ? servers[0].url : 'http://localhost';
  const lines = [
    '// What a user of openapi-fetch writes: a typed client over the generated `paths`, and a few calls.',
    "import createClient from 'openapi-fetch';",
    "import type { paths } from './schema';",
    '',
    `const client = createClient<paths>({ baseUrl: ${JSON.stringify(baseUrl)} });`,
    '',
    'export async function demo(): Promise<unknown[]> {',
    '  const results: unknown[] = [];',
  ];
  for (const c of calls) {
    lines.push(`  {`);
    lines.push(`    const { data, error, response } = await client.${c.method}(${JSON.stringify(c.path)}, ${JSON.stringify(c.init)});`);
    lines.push('    results.push(response.status, data ?? error);');
    lines.push('  }');
  }
  lines.push('  return results;', '}', '');
  return lines.join('\n');
}

/**
 * A file that compiles only when the generated client types store-invite's 400 errcode as the document's union,
 * not as a plain string: typed clients must be able to narrow on errcodes. `errcodeType` is how the generator
 * spells that type. Written only for documents that have store-invite (v2).
 */
function errcodeAssertion(imports: string, errcodeType: string): string | undefined {
  const has = Object.values(isObject(doc.paths) ? doc.paths : {}).some(
    (item) => isObject(item) && isObject(item.post) && item.post.operationId === 'storeInviteV2',
  );
  if (!has) return undefined;
  return [
    "// Compiles only if the errcode of store-invite's 400 answer is typed as the document's enum.",
    imports,
    '',
    `type Errcode = ${errcodeType};`,
    'type IsNarrowed = string extends Errcode ? false : true;',
    'export const errcodeIsTyped: IsNarrowed = true;',
    "export const known: Errcode = 'M_THREEPID_IN_USE';",
    '// @ts-expect-error: a code the operation never answers is not part of the type',
    "export const unknown: Errcode = 'M_NOT_AN_ERRCODE';",
    '',
  ].join('\n');
}

function writeAssertion(dir: string, imports: string, errcodeType: string): Step[] {
  const text = errcodeAssertion(imports, errcodeType);
  if (text === undefined) return [];
  writeFileSync(join(dir, 'errcodes.ts'), text);
  return [{ name: 'typed errcode assertion', ok: true, ms: 0, log: '' }];
}

/**
 * A file that compiles only if the class-per-tag SDK has every v1 operation as a method of the class named after
 * its tag, under its operationId: the document's promise that such a client gives back Jeon's interfaces.
 */
function writeJeonClasses(dir: string): Step[] {
  const methods: { tag: string; id: string }[] = [];
  for (const [path, item] of Object.entries(isObject(doc.paths) ? doc.paths : {})) {
    if (!path.startsWith('/_matrix/identity/api/v1') || !isObject(item)) continue;
    for (const method of HTTP_METHODS) {
      const op = item[method];
      if (isObject(op) && Array.isArray(op.tags) && typeof op.operationId === 'string')
        methods.push({ tag: String(op.tags[0]), id: op.operationId });
    }
  }
  if (methods.length === 0) return [];
  const tags = [...new Set(methods.map((m) => m.tag))].sort();
  const lines = [
    "// Compiles only if each v1 operation is a method of its tag's class: Jeon's interfaces and method names.",
    `import { ${tags.join(', ')} } from './client/sdk.gen';`,
    '',
    'export const jeon = [',
    ...methods.map((m) => `  ${m.tag}.${m.id},`),
    '];',
    '',
  ];
  writeFileSync(join(dir, 'jeon.ts'), lines.join('\n'));
  return [{ name: `Jeon's classes: ${methods.length} v1 methods in ${tags.length} classes`, ok: true, ms: 0, log: '' }];
}

// ---------------------------------------------------------------- the generators

type Generator = (dir: string) => Promise<Step[]>;

const GENERATORS: Record<string, Generator> = {
  async 'openapi-fetch'(dir) {
    const gen = await runNode(binPath('openapi-typescript', 'openapi-typescript'), [docPath, '--output', join(dir, 'schema.d.ts')], {
      cwd: dir,
    });
    const steps: Step[] = [{ name: 'openapi-typescript', ok: gen.code === 0, ms: gen.ms, log: gen.stdout + gen.stderr }];
    if (gen.code === 0) {
      const calls = discoverCalls();
      writeFileSync(join(dir, 'client.ts'), usageFile(calls));
      steps.push({ name: 'usage file', ok: calls.length > 0, ms: 0, log: calls.map((c) => `${c.method} ${c.path}`).join(', ') });
      steps.push(
        ...writeAssertion(
          dir,
          "import type { paths } from './schema';",
          "paths['/_matrix/identity/v2/store-invite']['post']['responses'][400]['content']['application/json']['errcode']",
        ),
      );
    }
    return steps;
  },

  async 'hey-api'(dir) {
    // The config file a user keeps beside their code: the 0.9x default plugins (fetch client), the SDK grouped in
    // one class per tag, as users mirroring a Java client configure it.
    writeFileSync(
      join(dir, 'openapi-ts.config.ts'),
      [
        "import { defineConfig } from '@hey-api/openapi-ts';",
        '',
        'export default defineConfig({',
        // An absolute path: a bare relative one such as `openapi/identity.yaml` is read as a Hey API registry
        // shorthand (`organization/project`) and fails; `./openapi/identity.yaml` works as well.
        `  input: ${JSON.stringify(docPath)},`,
        "  output: './client',",
        "  plugins: ['@hey-api/client-fetch', '@hey-api/typescript', { name: '@hey-api/sdk', operations: { strategy: 'byTags' } }],",
        '});',
        '',
      ].join('\n'),
    );
    const gen = await runNode(binPath('@hey-api/openapi-ts', 'openapi-ts'), ['--file', 'openapi-ts.config.ts', '--no-log-file'], {
      cwd: dir,
    });
    const steps: Step[] = [{ name: '@hey-api/openapi-ts', ok: gen.code === 0, ms: gen.ms, log: gen.stdout + gen.stderr }];
    if (gen.code === 0) {
      steps.push(
        ...writeAssertion(dir, "import type { StoreInviteV2Errors } from './client/types.gen';", "StoreInviteV2Errors[400]['errcode']"),
      );
      steps.push(...writeJeonClasses(dir));
    }
    return steps;
  },

  async orval(dir) {
    writeFileSync(
      join(dir, 'orval.config.ts'),
      [
        "import { defineConfig } from 'orval';",
        '',
        'export default defineConfig({',
        '  identity: {',
        `    input: { target: ${JSON.stringify(docPath)} },`,
        "    output: { target: './client/identity.ts', schemas: './client/model', client: 'fetch', mode: 'tags-split' },",
        '  },',
        '});',
        '',
      ].join('\n'),
    );
    const gen = await runNode(binPath('orval', 'orval'), ['--config', './orval.config.ts'], { cwd: dir });
    const steps: Step[] = [{ name: 'orval', ok: gen.code === 0, ms: gen.ms, log: gen.stdout + gen.stderr }];
    if (gen.code === 0) {
      steps.push(
        ...writeAssertion(
          dir,
          "import type { storeInviteV2Response400 } from './client/invitation-api/invitation-api';",
          "storeInviteV2Response400['data']['errcode']",
        ),
      );
    }
    return steps;
  },
};

async function compile(dir: string): Promise<{ step: Step; diagnostics: string[] }> {
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2) + '\n');
  const tsc = await runNode(binPath('typescript', 'tsc'), ['-p', 'tsconfig.json', '--strict', '--noEmit', '--pretty', 'false'], {
    cwd: dir,
  });
  const diagnostics = (tsc.stdout + tsc.stderr)
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.replace(/\s+$/, ''));
  return { step: { name: 'tsc --strict --noEmit', ok: tsc.code === 0 && diagnostics.length === 0, ms: tsc.ms, log: '' }, diagnostics };
}

/** The .ts files under `dir`, not following node_modules. */
function countTs(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules') continue;
    if (e.isDirectory()) n += countTs(join(dir, e.name));
    else if (e.name.endsWith('.ts')) n++;
  }
  return n;
}

async function check(name: string, generator: Generator, base: string): Promise<Outcome> {
  const dir = join(base, name);
  mkdirSync(dir, { recursive: true });
  // The generated code imports its runtime (openapi-fetch) and configs import their generator: resolve them here.
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const steps = await generator(dir);
  const outcome: Outcome = { generator: name, steps, diagnostics: [], files: 0 };
  if (steps.every((s) => s.ok)) {
    const { step, diagnostics } = await compile(dir);
    steps.push(step);
    outcome.diagnostics = diagnostics;
  }
  outcome.files = countTs(dir);
  return outcome;
}

function report(o: Outcome): boolean {
  const ok = o.steps.every((s) => s.ok);
  const total = o.steps.reduce((n, s) => n + s.ms, 0);
  console.log(`${o.generator.padEnd(14)} ${ok ? 'ok' : 'FAIL'}  (${o.files} .ts files, ${seconds(total)})`);
  for (const s of o.steps) {
    console.log(
      `    ${s.ok ? 'ok  ' : 'FAIL'} ${s.name}${s.ms ? ` (${seconds(s.ms)})` : ''}${s.name === 'usage file' ? `: ${s.log}` : ''}`,
    );
    // Generators' own warnings (e.g. their schema validators) are shown, failing or not.
    const noteworthy = s.log
      .split('\n')
      .filter((l) => /warn|error|fail|invalid|must /i.test(l) && s.name !== 'usage file')
      .slice(0, s.ok ? 10 : 60);
    for (const l of noteworthy) console.log(`         ${l.trim()}`);
    if (!s.ok && noteworthy.length === 0 && s.log.trim()) console.log(s.log.trim().replace(/^/gm, '         '));
  }
  if (o.diagnostics.length > 0) {
    const codes = new Map<string, number>();
    for (const d of o.diagnostics) {
      const code = /error (TS\d+)/.exec(d)?.[1];
      if (code) codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    console.log(
      `    ${o.diagnostics.filter((d) => /error TS\d+/.test(d)).length} compile errors: ${[...codes].map(([c, n]) => `${c} x${n}`).join(', ')}`,
    );
    for (const d of o.diagnostics) console.log(`      ${d}`);
  }
  return ok;
}

async function main(): Promise<void> {
  const started = performance.now();
  const only = option('--only')?.split(',');
  const names = Object.keys(GENERATORS).filter((n) => !only || only.includes(n));
  const unknown = only?.filter((n) => !(n in GENERATORS)) ?? [];
  if (unknown.length > 0 || names.length === 0) {
    console.error(`unknown generator(s): ${unknown.join(', ')}; known: ${Object.keys(GENERATORS).join(', ')}`);
    process.exit(2);
  }
  const base = mkdtempSync(join(tmpdir(), 'tessera-sdk-'));
  console.log(`contract:sdk: ${relative(root, docPath)} -> ${names.join(', ')}`);
  let outcomes: Outcome[];
  try {
    outcomes = await Promise.all(names.map((n) => check(n, GENERATORS[n]!, base)));
  } finally {
    if (!keep) rmSync(base, { recursive: true, force: true });
  }
  const failed = outcomes.filter((o) => !report(o));
  if (keep) console.log(`kept: ${base}`);
  console.log(
    failed.length === 0
      ? `contract:sdk: ok (${seconds(performance.now() - started)})`
      : `contract:sdk: FAILED: ${failed.map((o) => o.generator).join(', ')} (${seconds(performance.now() - started)})`,
  );
  process.exitCode = failed.length === 0 ? 0 : 1;
}

await main();
