// From Sydent's configuration: the Tessera configuration that serves the same deployment, and the signing key.
import { existsSync, readFileSync } from 'node:fs';
import { writeNewPrivateFile } from '../platform/privateFile.js';
import type { Config } from '../platform/config.js';
import { parseSigningKey } from '../keys/KeyRing.js';
import { encodeUnpadded } from '../platform/base64.js';
import { iniValue, type Ini } from './ini.js';
import { ImportError } from './importer.js';

const sameKey = (a: string, b: string) => {
  const x = parseSigningKey(a);
  const y = parseSigningKey(b);
  return x.keyId === y.keyId && encodeUnpadded(x.pair.publicKey) === encodeUnpadded(y.pair.publicKey);
};

/**
 * Tessera must sign with Sydent's key: homeservers trust it. The configured key (inline, or the key file) must be
 * that key; with no key file yet, Sydent's key is written there. Throws ImportError for another key.
 */
export function adoptSigningKey(config: Config, sydentKey: string, dryRun: boolean): string {
  if (config.keys.signingKey) {
    if (!sameKey(config.keys.signingKey, sydentKey))
      throw new ImportError("keys.signingKey is not Sydent's signing key: homeservers trust Sydent's");
    return 'already Tessera’s (keys.signingKey)';
  }
  const file = config.keys.signingKeyFile;
  if (existsSync(file)) {
    if (!sameKey(readFileSync(file, 'utf8'), sydentKey)) {
      throw new ImportError(
        `${file} holds another signing key than Sydent's: homeservers trust Sydent's. If this Tessera never served anyone, delete ${file} and run the import again`,
      );
    }
    return `already Tessera’s (${file})`;
  }
  if (dryRun) return `would be written to ${file}`;
  writeNewPrivateFile(file, `${sydentKey.trim()}\n`);
  return `written to ${file}`;
}

const lines = (v: string | undefined) =>
  (v ?? '')
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);

/** Sydent's `email.tlsmode` (0 / 1 or SSL / 2 or STARTTLS) as Tessera's mail.smtp.tls. */
function tlsMode(mode: string | undefined): 'none' | 'tls' | 'starttls' | undefined {
  if (mode === undefined) return undefined;
  const m = mode.trim().toUpperCase();
  if (m === '0' || m === 'NONE' || m === 'FALSE') return 'none';
  if (m === '1' || m === 'SSL' || m === 'TLS') return 'tls';
  if (m === '2' || m === 'STARTTLS') return 'starttls';
  throw new ImportError(`email.tlsmode ${mode} is not one of 0, 1 (SSL), 2 (STARTTLS)`);
}

/** Only the settings Sydent's configuration decides; everything else keeps Tessera's defaults. */
export function tesseraConfigFromSydent(ini: Ini, inBase: (path: string) => string, config: Config): Record<string, unknown> {
  const get = (section: string, key: string) => iniValue(ini, section, key);
  const prune = (o: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) {
      if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
        const inner = prune(v as Record<string, unknown>);
        if (Object.keys(inner).length > 0) out[k] = inner;
      } else out[k] = v;
    }
    return out;
  };
  const publicBaseUrl = get('http', 'client_http_base') ?? get('http', 'server.http_base');
  const hostname = get('email', 'email.hostname') ?? (publicBaseUrl ? new URL(publicBaseUrl).hostname : undefined);
  const from = get('email', 'email.from');
  const port = get('email', 'email.smtpport');
  const templates = get('general', 'templates.path');
  const terms = get('general', 'terms.path');
  const redact = get('email', 'email.third_party_invite_username_obfuscate_characters');
  return prune({
    server: { name: get('general', 'server.name'), publicBaseUrl },
    database: { url: config.database.url || undefined },
    keys: { signingKeyFile: config.keys.signingKey ? undefined : config.keys.signingKeyFile },
    terms: { file: terms ? inBase(terms) : undefined },
    invites: {
      redactChars: redact ? Number(redact) : undefined,
      blockedServers: lines(get('email', 'email.third_party_invite_homeserver_blocklist')),
      blockedRooms: lines(get('email', 'email.third_party_invite_room_blocklist')),
      blockedKeywords: lines(get('email', 'email.third_party_invite_keyword_blocklist')),
    },
    mail: {
      // Sydent fills {hostname} in its sender address
      from: from && hostname ? from.replace(/\{hostname\}/g, hostname) : from,
      smtp: {
        host: get('email', 'email.smtphost'),
        port: port ? Number(port) : undefined,
        tls: tlsMode(get('email', 'email.tlsmode')),
        user: get('email', 'email.smtpusername'),
        password: get('email', 'email.smtppassword'),
      },
      templatesDir: templates ? inBase(templates) : undefined,
      brand: get('general', 'brand.default'),
      webClientUrl: get('email', 'email.default_web_client_location'),
      inviteSubject: get('email', 'email.invite.subject'),
      inviteSubjectSpace: get('email', 'email.invite.subject_space'),
      verificationSubject: get('email', 'email.subject'),
    },
  });
}
