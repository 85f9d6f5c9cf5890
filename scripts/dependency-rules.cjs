// Import rules between Tessera's parts, checked by `npm run lint:deps` (dependency-cruiser) in `npm test`.
//
// Dependencies point one way: handlers -> services -> stores -> database. The capabilities form a graph without
// cycles: keys, mail and federation are services the others use; invitations and validation use them; associations
// (bind, lookups, onbind) use invitations and validation; accounts stand alone. platform/ (HTTP pipeline, database,
// config, logging) and outbox/ serve everyone and import no capability. The composition root (src/main.ts,
// src/service.ts, src/deps.ts, src/handlers.ts) is the one place that knows them all.
const CAPABILITIES = ['invitations', 'validation', 'associations', 'accounts', 'keys', 'mail', 'federation'];
const cap = (name) => `^src/${name}/`;
const anyCap = `^src/(${CAPABILITIES.join('|')})/`;

/** `from` may not import any of `to` (capability folder names). */
const mayNotUse = (from, to) => ({
  name: `${from}-not-to-${to.join('-')}`,
  comment: `${from} does not depend on ${to.join(', ')}: the capabilities form a graph without cycles`,
  severity: 'error',
  from: { path: cap(from) },
  to: { path: `^src/(${to.join('|')})/` },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no two files import each other, directly or through others',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'platform-serves-everyone',
      comment: 'platform/ imports no capability, no outbox and no composition root (types of deps and handlers excepted)',
      severity: 'error',
      from: { path: '^src/platform/' },
      to: { path: [anyCap, '^src/outbox/', '^src/(main|service)\\.ts$'] },
    },
    {
      name: 'platform-types-only-of-the-root',
      comment: 'platform/ may name the composition root types (Deps, the handler table), never import its code',
      severity: 'error',
      from: { path: '^src/platform/' },
      to: { path: '^src/(deps|handlers)\\.ts$', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'outbox-is-generic',
      comment: 'outbox/ knows no capability: mail and onbind plug their delivery into it',
      severity: 'error',
      from: { path: '^src/outbox/' },
      to: { path: [anyCap, '^src/(main|service|handlers)\\.ts$'] },
    },
    {
      name: 'stores-know-no-domain',
      comment: 'a store reads and writes rows; it imports the database layer and types, never domain code',
      severity: 'error',
      from: { path: 'Store\\.ts$' },
      to: { path: [anyCap, '^src/outbox/'], pathNot: ['Store\\.ts$', '/types\\.ts$'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'domain-knows-no-http',
      comment: 'only handlers (and the pipeline) speak HTTP; domain code throws DomainError and returns data',
      severity: 'error',
      from: { path: anyCap, pathNot: '/handlers\\.ts$' },
      to: { path: '^src/platform/http/', pathNot: '^src/platform/http/(security|paths)\\.ts$', dependencyTypesNot: ['type-only'] },
    },
    mayNotUse('keys', ['invitations', 'validation', 'associations', 'accounts', 'mail']),
    mayNotUse('mail', ['invitations', 'validation', 'associations', 'accounts']),
    mayNotUse('federation', ['invitations', 'validation', 'associations', 'accounts', 'mail']),
    mayNotUse('invitations', ['validation', 'associations', 'accounts']),
    mayNotUse('validation', ['invitations', 'associations', 'accounts']),
    mayNotUse('accounts', ['invitations', 'validation', 'associations', 'mail']),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(generated|node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
