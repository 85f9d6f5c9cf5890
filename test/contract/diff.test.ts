// The breaking-change gate (scripts/contract/diff): one document pair per rule, changes that must pass, the
// changelog's exemptions, and the command itself against a scratch git repository.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { acceptedChanges, BREAKING_RULES, diffDocuments, type Rule } from '../../scripts/contract/diff/engine.js';

const repo = resolve(import.meta.dirname, '../..');
const exec = promisify(execFile);

type Doc = Record<string, any>;

/** A small document using what identity.yaml uses: $refs to every component kind, allOf, type arrays, enums. */
function baseDocument(): Doc {
  return {
    openapi: '3.1.0',
    info: { title: 'Things', version: '1' },
    paths: {
      '/things/{id}': {
        get: {
          operationId: 'getThing',
          parameters: [{ $ref: '#/components/parameters/Id' }, { name: 'q', in: 'query', schema: { type: 'string' } }],
          responses: {
            '200': { description: 'ok', content: { 'application/json': { schema: { $ref: '#/components/schemas/Thing' } } } },
            '404': { $ref: '#/components/responses/NotFound' },
          },
        },
      },
      '/things': {
        post: {
          operationId: 'createThing',
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: { $ref: '#/components/schemas/NewThing' } },
              'application/x-www-form-urlencoded': { schema: { $ref: '#/components/schemas/NewThing' } },
            },
          },
          responses: { '200': { description: 'ok', content: { 'application/json': { schema: { $ref: '#/components/schemas/Thing' } } } } },
        },
        get: {
          operationId: 'listThings',
          security: [{ bearer: [] }],
          responses: {
            '200': {
              description: 'ok',
              content: { 'application/json': { schema: { type: 'array', items: { $ref: '#/components/schemas/Thing' } } } },
            },
          },
        },
      },
    },
    components: {
      parameters: { Id: { name: 'id', in: 'path', required: true, schema: { type: 'string', maxLength: 64 } } },
      schemas: {
        Thing: {
          type: 'object',
          required: ['id', 'kind'],
          properties: {
            id: { type: 'string' },
            kind: { type: 'string', enum: ['a', 'b'] },
            note: { type: ['string', 'null'] },
            tags: { type: 'array', items: { type: 'string' } },
            size: { type: 'integer' },
          },
        },
        NewThing: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            name: { type: 'string', maxLength: 100 },
            mode: { type: 'string', enum: ['x', 'y'] },
            count: { type: ['integer', 'null'], minimum: 0 },
            labels: { type: 'array', items: { type: 'string' } },
          },
        },
        Error: { type: 'object', required: ['errcode', 'error'], properties: { errcode: { type: 'string' }, error: { type: 'string' } } },
      },
      responses: {
        NotFound: {
          description: 'no such thing',
          content: {
            'application/json': {
              schema: {
                allOf: [{ $ref: '#/components/schemas/Error' }, { type: 'object', properties: { errcode: { enum: ['M_NOT_FOUND'] } } }],
              },
            },
          },
        },
      },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    },
  };
}

const schemas = (d: Doc) => d.components.schemas;
const op = (d: Doc, path: string, method: string) => d.paths[path][method];

/** For each breaking rule: a change that makes exactly that finding (its id), and nothing else breaking. */
const breakingPairs: [Rule, string, (d: Doc) => void][] = [
  ['operation-removed', 'operation-removed getThing GET /things/{id}', (d) => delete d.paths['/things/{id}']],
  ['operation-id-changed', 'operation-id-changed createThing POST /things', (d) => (op(d, '/things', 'post').operationId = 'makeThing')],
  ['security-added', 'security-added createThing POST /things', (d) => (op(d, '/things', 'post').security = [{ bearer: [] }])],
  ['response-removed', 'response-removed getThing 404', (d) => delete op(d, '/things/{id}', 'get').responses['404']],
  [
    'response-removed',
    'response-removed createThing 200',
    (d) => {
      // a changed status is the old one removed
      const post = op(d, '/things', 'post');
      post.responses['201'] = post.responses['200'];
      delete post.responses['200'];
    },
  ],
  [
    'param-added-required',
    'param-added-required getThing header.X-Key',
    (d) => op(d, '/things/{id}', 'get').parameters.push({ name: 'X-Key', in: 'header', required: true, schema: { type: 'string' } }),
  ],
  ['param-became-required', 'param-became-required getThing query.q', (d) => (op(d, '/things/{id}', 'get').parameters[1].required = true)],
  [
    'body-became-required',
    'body-became-required listThings body',
    (d) => (op(d, '/things', 'get').requestBody = { required: true, content: { 'application/json': { schema: { type: 'object' } } } }),
  ],
  [
    'request-media-type-removed',
    'request-media-type-removed createThing body application/x-www-form-urlencoded',
    (d) => delete op(d, '/things', 'post').requestBody.content['application/x-www-form-urlencoded'],
  ],
  [
    'request-field-required',
    'request-field-required createThing body.colour',
    (d) => {
      schemas(d).NewThing.properties.colour = { type: 'string' };
      schemas(d).NewThing.required.push('colour');
    },
  ],
  ['request-field-required', 'request-field-required createThing body.mode', (d) => schemas(d).NewThing.required.push('mode')],
  [
    'request-field-removed',
    'request-field-removed createThing body.mode',
    (d) => {
      delete schemas(d).NewThing.properties.mode; // and NewThing refuses unknown fields
    },
  ],
  ['type-narrowed', 'type-narrowed createThing body.count', (d) => (schemas(d).NewThing.properties.count.type = 'integer')],
  ['type-narrowed', 'type-narrowed createThing body.mode', (d) => (schemas(d).NewThing.properties.mode.enum = ['x'])],
  ['type-narrowed', 'type-narrowed createThing body.name', (d) => (schemas(d).NewThing.properties.name.maxLength = 50)],
  ['type-narrowed', 'type-narrowed createThing body.count', (d) => (schemas(d).NewThing.properties.count.minimum = 1)],
  ['type-narrowed', 'type-narrowed createThing body.mode', (d) => (schemas(d).NewThing.properties.mode.pattern = '^x$')],
  ['type-narrowed', 'type-narrowed createThing body.name', (d) => (schemas(d).NewThing.properties.name.format = 'email')],
  ['type-narrowed', 'type-narrowed createThing body.labels[]', (d) => (schemas(d).NewThing.properties.labels.items.enum = ['red'])],
  ['type-narrowed', 'type-narrowed getThing path.id', (d) => (d.components.parameters.Id.schema.maxLength = 16)],
  ['response-field-removed', 'response-field-removed getThing 200 body.tags', (d) => delete schemas(d).Thing.properties.tags],
  ['response-field-removed', 'response-field-removed listThings 200 body[].tags', (d) => delete schemas(d).Thing.properties.tags],
  ['response-field-optional', 'response-field-optional getThing 200 body.kind', (d) => (schemas(d).Thing.required = ['id'])],
  [
    'response-type-widened',
    'response-type-widened getThing 200 body.id',
    (d) => (schemas(d).Thing.properties.id.type = ['string', 'null']),
  ],
  [
    'response-type-widened',
    'response-type-widened getThing 404 body.errcode',
    (d) => (schemas(d).Error.properties.errcode.type = ['string', 'integer']),
  ],
  [
    'response-media-type-removed',
    'response-media-type-removed getThing 200 application/json',
    (d) => (op(d, '/things/{id}', 'get').responses['200'].content = { 'text/plain': { schema: { type: 'string' } } }),
  ],
];

/** Changes that break nobody: the gate must pass them. */
const passingPairs: [string, (d: Doc) => void][] = [
  ['a new operation', (d) => (d.paths['/health'] = { get: { operationId: 'health', responses: { '200': { description: 'ok' } } } })],
  ['a new optional request field', (d) => (schemas(d).NewThing.properties.colour = { type: 'string' })],
  ['a new response field', (d) => (schemas(d).Thing.properties.colour = { type: 'string' })],
  ['a new response status', (d) => (op(d, '/things/{id}', 'get').responses['429'] = { description: 'slow down' })],
  [
    'a new optional parameter',
    (d) => op(d, '/things/{id}', 'get').parameters.push({ name: 'lang', in: 'query', schema: { type: 'string' } }),
  ],
  ['a widened request type', (d) => (schemas(d).NewThing.properties.name.type = ['string', 'null'])],
  ['a raised request limit', (d) => (schemas(d).NewThing.properties.name.maxLength = 200)],
  ['a new request enum value', (d) => schemas(d).NewThing.properties.mode.enum.push('z')],
  [
    'strings accepted beside integers, with a pattern that constrains only the strings',
    (d) => Object.assign(schemas(d).NewThing.properties.count, { type: ['integer', 'string', 'null'], pattern: '^[0-9]+$' }),
  ],
  ['a narrowed response type', (d) => (schemas(d).Thing.properties.note.type = 'string')],
  ['a new response enum value (clients accept unknown values)', (d) => schemas(d).Thing.properties.kind.enum.push('c')],
  [
    'a new errcode',
    (d) => d.components.responses.NotFound.content['application/json'].schema.allOf[1].properties.errcode.enum.push('M_GONE'),
  ],
  ['an optional response field made required', (d) => schemas(d).Thing.required.push('note')],
  ['descriptions and examples', (d) => (schemas(d).Thing.description = 'A thing.')],
  ['security dropped', (d) => delete op(d, '/things', 'get').security],
];

describe('the breaking-change gate', () => {
  it.each(breakingPairs)('finds %s: %s', (rule, id, change) => {
    const head = baseDocument();
    change(head);
    const breaking = diffDocuments(baseDocument(), head).filter((f) => f.breaking);
    expect(breaking.map((f) => f.id)).toContain(id);
    expect(breaking.every((f) => f.rule === rule)).toBe(true);
  });

  it('has a document pair for every breaking rule', () => {
    const covered = new Set(breakingPairs.map(([rule]) => rule));
    expect([...BREAKING_RULES].filter((r) => !covered.has(r))).toEqual([]);
  });

  it.each(passingPairs)('passes %s', (_what, change) => {
    const head = baseDocument();
    change(head);
    expect(diffDocuments(baseDocument(), head).filter((f) => f.breaking)).toEqual([]);
  });

  it('finds nothing between the current document and itself', () => {
    const doc = parse(readFileSync(join(repo, 'openapi/identity.yaml'), 'utf8')) as Doc;
    expect(diffDocuments(doc, structuredClone(doc))).toEqual([]);
  });

  it('finds the v1 store-invite field a client relies on, in the real document', () => {
    const base = parse(readFileSync(join(repo, 'openapi/identity.yaml'), 'utf8')) as Doc;
    const head = structuredClone(base);
    delete head.components.schemas.InvitationResponse.properties.display_name;
    const ids = diffDocuments(base, head)
      .filter((f) => f.breaking)
      .map((f) => f.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        'response-field-removed storeInviteV2 200 body.display_name',
        'response-field-removed invite 200 body.display_name',
      ]),
    );
  });

  it('reads accepted changes from changelog lines naming a finding id', () => {
    const accepted = acceptedChanges(
      [
        '## Unreleased',
        '- breaking: response-field-removed getThing 200 body.tags — tags moved to /things/{id}/tags',
        '* Breaking: `operation-removed getThing GET /things/{id}` -- replaced by listThings',
        '- Added: a new field (not a breaking entry)',
        '- breaking: type-narrowed createThing body.name',
      ].join('\n'),
    );
    expect([...accepted].sort()).toEqual(
      [
        'operation-removed getThing GET /things/{id}',
        'response-field-removed getThing 200 body.tags',
        'type-narrowed createThing body.name',
      ].sort(),
    );
  });
});

describe('npm run contract:diff', () => {
  let dir: string;
  const cli = join(repo, 'scripts/contract/diff/cli.ts');
  const tsx = join(repo, 'node_modules/tsx/dist/cli.mjs');
  const run = (args: string[], cwd = dir) =>
    exec(process.execPath, [tsx, cli, ...args], { cwd }).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
  const git = (...args: string[]) => exec('git', args, { cwd: dir });
  const write = (doc: Doc) => writeFileSync(join(dir, 'openapi/identity.yaml'), stringify(doc));
  const commit = async (msg: string) => {
    await git('add', '-A');
    await git('-c', 'user.name=t', '-c', 'user.email=t@example.org', 'commit', '-qm', msg);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-contract-diff-'));
    mkdirSync(join(dir, 'openapi'));
    await git('init', '-q');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('passes when there is no previous commit to compare with, and refuses a named ref that does not exist', async () => {
    write(baseDocument());
    await commit('first');
    const first = await run([]);
    expect(first).toMatchObject({ code: 0 });
    expect(first.out).toMatch(/HEAD~1 is not in this clone/);
    expect(await run(['HEAD~1', '--if-present'])).toMatchObject({ code: 0 });
    expect(await run(['no-such-ref'])).toMatchObject({ code: 2 });
  });

  it('compares with the previous commit by default and fails on a breaking change the changelog does not accept', async () => {
    const head = baseDocument();
    delete schemas(head).Thing.properties.tags;
    write(head);
    await commit('drop tags');
    const refused = await run([]);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/against HEAD~1 \([0-9a-f]{12}\): 3 breaking/);
    expect(refused.out).toContain('BREAKING  response-field-removed getThing 200 body.tags');
    expect(refused.out).toContain('BREAKING  response-field-removed listThings 200 body[].tags');
    expect(refused.out).toContain('BREAKING  response-field-removed createThing 200 body.tags');

    writeFileSync(
      join(dir, 'openapi/CHANGELOG.md'),
      [
        '## Unreleased',
        '',
        '- breaking: response-field-removed getThing 200 body.tags — moved to /things/{id}/tags',
        '- breaking: response-field-removed listThings 200 body[].tags — moved',
        '- breaking: response-field-removed createThing 200 body.tags — moved',
      ].join('\n'),
    );
    const accepted = await run([]);
    expect(accepted.code).toBe(0);
    expect(accepted.out).toContain('0 breaking, 3 accepted');
    const json = JSON.parse((await run(['--json'])).out) as { findings: { id: string; accepted: boolean }[] };
    expect(json.findings.filter((f) => f.accepted).map((f) => f.id)).toHaveLength(3);
  });

  it('compares with the latest tag when there is one, and with a file given by --base', async () => {
    await commit('accept the removal');
    await git('tag', 'v1');
    const head = baseDocument();
    delete schemas(head).Thing.properties.tags;
    schemas(head).NewThing.required.push('mode');
    write(head);
    await commit('require mode');
    const result = await run([]);
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/against v1 \(/);
    expect(result.out).toContain('BREAKING  request-field-required createThing body.mode');

    writeFileSync(join(dir, 'older.yaml'), stringify(baseDocument()));
    const byFile = await run(['--base', 'older.yaml']);
    expect(byFile.code).toBe(1);
    expect(byFile.out).toContain('against older.yaml');
  });
});
