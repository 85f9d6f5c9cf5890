// The served contract: /openapi/<name>.yaml and .json, the API reference page at /docs/ (opened in headless
// Chromium, which must load nothing from elsewhere), and docs.enabled=false.
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { chromium, type Browser } from 'playwright-core';
import { testDatabases } from '../helpers/databases.js';
import { settle, startTestServer, type TestServer } from '../helpers/server.js';
import { buildReferencePage } from '../../scripts/docs-page.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const DOCUMENTS = ['identity', 'homeserver'];
// The documents do not depend on the database: SQLite only.
const sqlite = testDatabases().find((d) => d.name === 'sqlite')!;

async function server(enabled: boolean): Promise<{ srv: TestServer; stop: () => Promise<void> }> {
  const db = await sqlite.create();
  const srv = await startTestServer({ dbUrl: db.url, overrides: { docs: { enabled } } });
  // stop() fails on any answer the document's check found wrong: none of these paths is an operation of it.
  return { srv, stop: () => settle([() => srv.stop(), () => db.dispose()]) };
}

describe('the served contract', () => {
  let srv: TestServer;
  let stop: () => Promise<void>;
  beforeAll(async () => {
    // The page is a build product (scripts/docs-page.ts): built here when missing or older than the document.
    buildReferencePage('openapi/identity.yaml', 'openapi/identity.html', { ifStale: true });
    ({ srv, stop } = await server(true));
  });
  afterAll(() => stop?.());

  it.each(DOCUMENTS)('answers %s as YAML and as JSON, with the same content as openapi/', async (name) => {
    const source = parseYaml(readFileSync(`openapi/${name}.yaml`, 'utf8'));
    const yaml = await fetch(`${srv.url}/openapi/${name}.yaml`);
    expect(yaml.status).toBe(200);
    expect(yaml.headers.get('content-type')).toBe('application/yaml');
    const yamlText = await yaml.text();
    expect(yamlText).toBe(readFileSync(`openapi/${name}.yaml`, 'utf8'));
    const json = await fetch(`${srv.url}/openapi/${name}.json`);
    expect(json.status).toBe(200);
    expect(json.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await json.json()).toEqual(source);
    expect(parseYaml(yamlText)).toEqual(source);
  });

  it('answers HEAD like GET without a body, and 304 to the current ETag', async () => {
    for (const path of ['/openapi/identity.yaml', '/openapi/identity.json', '/docs/']) {
      const get = await fetch(`${srv.url}${path}`);
      const body = Buffer.from(await get.arrayBuffer());
      const etag = get.headers.get('etag');
      expect(etag, path).toMatch(/^"[A-Za-z0-9_-]+"$/);
      expect(get.headers.get('cache-control'), path).toContain('max-age=');
      const head = await fetch(`${srv.url}${path}`, { method: 'HEAD' });
      expect(head.status, path).toBe(200);
      expect(head.headers.get('content-length'), path).toBe(String(body.length));
      expect(head.headers.get('etag'), path).toBe(etag);
      expect((await head.arrayBuffer()).byteLength, path).toBe(0);
      // fetch() adds Cache-Control: no-cache to a conditional request unless told otherwise; a browser's reload sends this.
      const again = await fetch(`${srv.url}${path}`, { headers: { 'if-none-match': etag!, 'cache-control': 'max-age=0' } });
      expect(again.status, path).toBe(304);
    }
    const page = await fetch(`${srv.url}/docs/`);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
  });

  // CI installs Chromium (.ci/run) and this test must run there; elsewhere a missing Chromium skips it, visibly.
  it.skipIf(!existsSync(CHROMIUM) && !process.env.CI)(
    'renders store-invite with its request fields in Chromium, loading nothing from elsewhere',
    async () => {
      if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install it (apt-get install -y chromium)`);
      const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      try {
        const context = await browser.newContext();
        const requested: string[] = [];
        context.on('request', (r) => requested.push(r.url()));
        const page = await context.newPage();
        await page.goto(`${srv.url}/docs/#/invitationapi/storeinvitev2`, { waitUntil: 'networkidle' });
        const summary = 'Store a pending invitation to a third-party identifier';
        await page
          .locator('h1, h2, h3')
          .filter({ hasText: new RegExp(`^${summary}$`) })
          .first()
          .waitFor({ state: 'visible', timeout: 15_000 });
        for (const field of ['medium', 'address', 'room_id', 'sender']) {
          await page.locator(`a[href$="storeinvitev2/t=request&path=${field}"]`).first().waitFor({ state: 'visible', timeout: 5_000 });
          await expect(page.getByText(field, { exact: true }).first().isVisible(), field).resolves.toBe(true);
        }
        await page.waitForLoadState('networkidle');
        expect(requested.length).toBeGreaterThan(0);
        // blob: URLs carry the page's origin; data: URLs are no request to anyone.
        const elsewhere = requested.filter((u) => !u.startsWith('data:') && new URL(u).origin !== srv.url);
        expect(elsewhere).toEqual([]);
      } finally {
        await browser.close();
      }
    },
  );
});

describe('docs.enabled=false', () => {
  it('answers 404 M_UNRECOGNIZED on every served-contract path', async () => {
    const { srv, stop } = await server(false);
    try {
      for (const path of ['/openapi/identity.yaml', '/openapi/identity.json', '/openapi/homeserver.yaml', '/docs/', '/docs']) {
        const res = await srv.call('GET', path);
        expect(res.status, path).toBe(404);
        expect(res.body.errcode, path).toBe('M_UNRECOGNIZED');
      }
    } finally {
      await stop();
    }
  });
});
