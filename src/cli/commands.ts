// The operator's command line (entry point: tessera.ts): `npm run tessera -- <command>`, or `tessera <command>`.
// It reads the same configuration as the server (file, environment) and opens the same database, bringing its
// schema up to date as the server does at start-up. docs/operations-cli.md describes every command.
//
// Exit codes: 0 done; 1 the command could not do it (said why); 2 usage or configuration error; 3 not found.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig, type Config } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { Database } from '../platform/db/Database.js';
import { createStores } from '../service.js';
import { CommandError, UsageError, type Context } from './context.js';
import { invitesList, invitesRevoke } from './invites.js';
import { keysGenerate, keysList, keysRotate } from './keys.js';

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(ctx: Context, values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<void>;
}

const COMMANDS: Record<string, Command> = {
  'invites list': {
    summary: 'pending invitations by address, room or sender (no tokens or keys)',
    usage:
      'tessera invites list (--address A [--medium email] | --room R | --sender S) [--limit N] [--json] [--full-addresses]\n\n' +
      'Lists unexpired invitations, newest first, with their id (for revoke), state (pending, claimed by a bind,\n' +
      'delivered), room, sender and times. Addresses are shown redacted unless listed by address or --full-addresses.',
    options: {
      address: { type: 'string' },
      medium: { type: 'string', default: 'email' },
      room: { type: 'string' },
      sender: { type: 'string' },
      limit: { type: 'string', default: '100' },
      json: { type: 'boolean', default: false },
      'full-addresses': { type: 'boolean', default: false },
    },
    run: invitesList,
  },
  'invites revoke': {
    summary: 'revoke an invitation by id or token: its key turns invalid, its email is not sent',
    usage:
      'tessera invites revoke <id | token>\n\n' +
      'Deletes a pending invitation, its ephemeral key and its unsent email in one transaction, then waits until no\n' +
      'instance can still answer the key valid from its cache (performance.keyValidityCacheMs) before reporting.\n' +
      'An invitation a bind already claimed or delivered cannot be revoked (exit 1); an unknown one exits 3.',
    options: {},
    run: invitesRevoke,
  },
  'keys list': {
    summary: 'the long-term signing keys and their state',
    usage:
      'tessera keys list [--json]\n\nEvery key: id, public key, signing / valid until / retired / trusted by configuration, and whether\nits private key is on this host.',
    options: { json: { type: 'boolean', default: false } },
    run: keysList,
  },
  'keys rotate': {
    summary: 'sign with a new key; the previous one stays valid for keys.rotatedKeyLifetimeMs',
    usage:
      'tessera keys rotate\n\n' +
      'Generates a new key with the next key id, keeps the current one in <key file>.retired/, records the rotation\n' +
      'in the database (every instance follows within keys.refreshIntervalMs) and writes the new key file. The\n' +
      'previous key stays valid on /pubkey/isvalid, is served on /pubkey/{keyId} and co-signs invitations until\n' +
      'keys.rotatedKeyLifetimeMs has passed.',
    options: {},
    run: keysRotate,
  },
  'keys generate': {
    summary: 'write a new signing key file (never over an existing one), or --print one',
    usage: 'tessera keys generate [--print]',
    options: { print: { type: 'boolean', default: false } },
    run: keysGenerate,
  },
};

const GLOBAL = { config: { type: 'string' as const }, help: { type: 'boolean' as const, short: 'h', default: false } };

function overview(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'usage: tessera <command> [options] [--config FILE]',
    '',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'tessera <command> --help describes one. Configuration: --config FILE, TESSERA_CONFIG and TESSERA_* as for the server.',
    'Exit codes: 0 done, 1 not done (the message says why), 2 usage or configuration error, 3 not found.',
  ].join('\n');
}

export async function run(argv: string[], io: { out(s: string): void; err(s: string): void }): Promise<number> {
  const words = argv.filter((a) => !a.startsWith('-'));
  if (argv.length === 0) {
    io.err(overview());
    return 2;
  }
  if (words[0] === 'help' || (words.length === 0 && (argv.includes('--help') || argv.includes('-h')))) {
    io.out(overview());
    return 0;
  }
  const name = `${words[0] ?? ''} ${words[1] ?? ''}`.trim();
  const command = COMMANDS[name];
  if (!command) {
    io.err(`tessera: unknown command "${words.slice(0, 2).join(' ')}"\n\n${overview()}`);
    return 2;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...GLOBAL, ...command.options }, allowPositionals: true, strict: true });
  } catch (err) {
    io.err(`tessera ${name}: ${(err as Error).message}\n\nusage: ${command.usage}`);
    return 2;
  }
  if (parsed.values.help) {
    io.out(`usage: ${command.usage}`);
    return 0;
  }
  let config: Config;
  try {
    config = loadConfig({ argv: parsed.values.config ? ['--config', String(parsed.values.config)] : [] });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(err.message);
      return 2;
    }
    throw err;
  }
  const opened: Database[] = [];
  const ctx: Context = {
    config,
    async open() {
      const db = await Database.open({
        url: config.database.url,
        sqliteBusyTimeoutMs: config.database.sqliteBusyTimeoutMs,
        acquireTimeoutMs: config.database.acquireTimeoutMs,
        log: createLogger('warn'),
        poolMax: 2,
      });
      opened.push(db);
      return { db, stores: createStores(db, { keyValidityCacheMs: config.performance.keyValidityCacheMs }) };
    },
    out: io.out,
    now: Date.now,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
  try {
    await command.run(ctx, parsed.values as Record<string, string | boolean | undefined>, parsed.positionals.slice(2));
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`tessera ${name}: ${err.message}\n\nusage: ${command.usage}`);
      return 2;
    }
    if (err instanceof CommandError) {
      io.err(`tessera ${name}: ${err.message}`);
      return err.exitCode;
    }
    io.err(`tessera ${name}: ${(err as Error).message}`);
    return 1;
  } finally {
    for (const db of opened) await db.close();
  }
}
