// The typed client as a user of the package gets it: compiled with declarations the way `npm run build` compiles
// it, resolved as `tessera/client` through package.json's exports by a separate TypeScript project, type-checked
// there (an errcode store-invite never answers must not compile), then run with plain node against a server.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { clientOperations } from '../../src/client/index.js';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const tsc = join(repo, 'node_modules/typescript/bin/tsc');

const consumer = `
import { createIdentityClient, MatrixError, type ErrcodeOf } from 'tessera/client';

const client = createIdentityClient({ baseUrl: process.argv[2]!, version: 'v1' });
const stored = await client.storeInvite({
  medium: 'email',
  address: 'someone@example.org',
  room_id: '!room:example.org',
  sender: '@inviter:example.org',
});
const valid: boolean = await client.isEphemeralPubKeyValid(stored.public_keys[1]!.public_key);
let code: ErrcodeOf<'storeInvite'> | undefined;
try {
  await client.storeInvite({ medium: 'msisdn', address: '15551234567', room_id: '!room:example.org', sender: '@inviter:example.org' });
} catch (err) {
  if (err instanceof MatrixError && err.is('storeInvite')) {
    code = err.errcode;
    // @ts-expect-error M_NOT_FOUND is not an errcode store-invite answers
    const never: typeof err.errcode = 'M_NOT_FOUND';
    void never;
  }
}
console.log(JSON.stringify({ valid, code, tokenLength: stored.token.length }));
`;

describe('the tessera/client package export', () => {
  let dir: string;
  let srv: TestServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-client-package-'));
    srv = await startTestServer({ dbUrl: `sqlite://${join(dir, 'db.sqlite')}` });
  });
  afterAll(async () => {
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('compiles with declarations, resolves through the exports map, type-checks errcodes and runs', async () => {
    // The package as installed: its package.json, dist/ as the build emits it, its own dependencies.
    const pkg = join(dir, 'app/node_modules/tessera');
    mkdirSync(pkg, { recursive: true });
    cpSync(join(repo, 'package.json'), join(pkg, 'package.json'));
    symlinkSync(join(repo, 'node_modules'), join(pkg, 'node_modules'));
    writeFileSync(
      join(dir, 'tsconfig.client.json'),
      JSON.stringify({
        extends: join(repo, 'tsconfig.build.json'),
        compilerOptions: { outDir: join(pkg, 'dist'), rootDir: repo, typeRoots: [join(repo, 'node_modules/@types')] },
        include: [join(repo, 'src/client')],
      }),
    );
    const built = await run(process.execPath, [tsc, '-p', join(dir, 'tsconfig.client.json')]).catch((e: { stdout: string }) => e);
    expect(built.stdout).toBe('');
    const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      exports: Record<string, { types: string; default: string }>;
      files: string[];
      dependencies: Record<string, string>;
    };
    expect(manifest.files).toContain('dist');
    expect(Object.keys(manifest.dependencies)).toContain('openapi-fetch');

    // A homeserver developer's project: NodeNext resolution, strict, Node's types.
    const app = join(dir, 'app');
    mkdirSync(join(app, 'node_modules/@types'), { recursive: true });
    symlinkSync(join(repo, 'node_modules/@types/node'), join(app, 'node_modules/@types/node'));
    writeFileSync(join(app, 'package.json'), JSON.stringify({ type: 'module', private: true }));
    writeFileSync(join(app, 'main.ts'), consumer);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          outDir: 'out',
          types: ['node'],
        },
        files: ['main.ts'],
      }),
    );
    const compiled = await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')]).catch((e: { stdout: string }) => e);
    expect(compiled.stdout).toBe('');

    const { stdout } = await run(process.execPath, [join(app, 'out/main.js'), srv.url]);
    expect(JSON.parse(stdout)).toEqual({ valid: true, code: 'M_UNRECOGNIZED', tokenLength: expect.any(Number) });
  });

  it('fails to compile a consumer that expects an errcode the operation never answers', async () => {
    // The negative control of the check above: without the directive the assignment is a type error.
    const app = join(dir, 'app');
    writeFileSync(
      join(app, 'bad.ts'),
      `import type { ErrcodeOf } from 'tessera/client';\nexport const c: ErrcodeOf<'storeInvite'> = 'M_NOT_FOUND';\n`,
    );
    writeFileSync(
      join(app, 'tsconfig.bad.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          types: ['node'],
        },
        files: ['bad.ts'],
      }),
    );
    const failed = await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.bad.json')]).then(
      () => ({ stdout: '' }),
      (e: { stdout: string }) => e,
    );
    expect(failed.stdout).toMatch(/bad\.ts\(2,14\): error TS2322: Type '"M_NOT_FOUND"' is not assignable/);
  });

  it('wraps every operation the document offers, each under its own operationId', () => {
    const document = parse(readFileSync(join(repo, 'openapi/identity.yaml'), 'utf8')) as {
      paths: Record<string, Record<string, { operationId?: string; 'x-tessera-not-offered'?: boolean }>>;
    };
    const offered = Object.values(document.paths)
      .flatMap((item) => Object.entries(item))
      .filter(([, op]) => typeof op === 'object' && op.operationId && !op['x-tessera-not-offered'])
      // the GET form of submitToken is the link a person opens from the email, not an API call
      .filter(([method, op]) => !(method === 'get' && /SubmitToken|ValidateEmail/i.test(op.operationId!)))
      .map(([, op]) => op.operationId!);
    const wrapped = Object.values(clientOperations).flatMap((ids) => Object.values(ids) as string[]);
    expect(new Set(wrapped).size).toBe(wrapped.length);
    expect([...wrapped].sort()).toEqual([...offered].sort());
  });
});
