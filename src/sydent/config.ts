// From Sydent's configuration: the Tessera configuration that serves the same deployment, and the signing key.
import { existsSync, readFileSync } from 'node:fs';
import { writeNewPrivateFile } from '../platform/privateFile.js';
import type { Config } from '../platform/config.js';
import { parseSigningKey } from '../keys/KeyRing.js';
import { encodeUnpadded } from '../platform/base64.js';
import { iniValue, type Ini } from './ini.js';
import { ImportError } from './errors.js';
import type { SigningKeyRecord } from '../keys/SigningKeyStore.js';

export interface SydentKey {
  text: string;
  keyId: string;
  /** Unpadded standard base64. */
  publicKey: string;
}

export function sydentKey(text: string): SydentKey {
  let parsed;
  try {
    parsed = parseSigningKey(text);
  } catch (err) {
    throw new ImportError(`[crypto] ed25519.signingkey: ${(err as Error).message}`);
  }
  return { text: text.trim(), keyId: parsed.keyId, publicKey: encodeUnpadded(parsed.pair.publicKey) };
}

function publicOf(text: string, where: string): { keyId: string; publicKey: string } {
  try {
    const k = parseSigningKey(text);
    return { keyId: k.keyId, publicKey: encodeUnpadded(k.pair.publicKey) };
  } catch (err) {
    throw new ImportError(`${where}: ${(err as Error).message}`);
  }
}

/** What the import does with the signing key: nothing (`write` undefined), or write Sydent's key to a new key file. */
export interface KeyPlan {
  outcome: string;
  write?: { file: string; text: string };
}

/**
 * Tessera must sign with Sydent's key: homeservers trust it. The configured key (inline, or the key file) and the
 * keys Tessera's database records (`tessera keys rotate`) must agree with it: either Sydent's key signs, or Tessera
 * rotated it out itself after an earlier import. With no key file yet, Sydent's key is to be written there.
 * Throws ImportError otherwise; writes nothing.
 */
export function planSigningKey(config: Config, sydent: SydentKey, recorded: SigningKeyRecord[]): KeyPlan {
  const same = (k: { keyId: string; publicKey: string }) => k.keyId === sydent.keyId && k.publicKey === sydent.publicKey;
  const record = recorded.find((r) => r.keyId === sydent.keyId);
  if (record && record.publicKey !== sydent.publicKey) {
    throw new ImportError(`Tessera's database records another public key under ${sydent.keyId} than Sydent's: homeservers trust Sydent's`);
  }
  if (record && record.retiredAt !== null) {
    return { outcome: `rotated out by tessera keys rotate (valid until ${new Date(record.validUntil ?? 0).toISOString()})` };
  }
  const signing = recorded.find((r) => r.retiredAt === null);
  if (signing && signing.keyId !== sydent.keyId) {
    throw new ImportError(
      `Tessera's database records ${signing.keyId} as its signing key, not Sydent's ${sydent.keyId}: homeservers trust Sydent's`,
    );
  }
  if (config.keys.signingKey) {
    if (!same(publicOf(config.keys.signingKey, 'keys.signingKey')))
      throw new ImportError("keys.signingKey is not Sydent's signing key: homeservers trust Sydent's");
    return { outcome: 'already Tessera’s (keys.signingKey)' };
  }
  const file = config.keys.signingKeyFile;
  if (existsSync(file)) {
    if (!same(publicOf(readFileSync(file, 'utf8'), file))) {
      throw new ImportError(
        `${file} holds another signing key than Sydent's: homeservers trust Sydent's. If this Tessera never served anyone, move ${file} away and run the import again`,
      );
    }
    return { outcome: `already Tessera’s (${file})` };
  }
  return { outcome: `to be written to ${file}`, write: { file, text: `${sydent.text}\n` } };
}

/** Writes the key file a plan asks for (after every check passed). */
export function writeSigningKey(plan: KeyPlan): string {
  if (!plan.write) return plan.outcome;
  writeNewPrivateFile(plan.write.file, plan.write.text);
  return `written to ${plan.write.file}`;
}

const lines = (v: string | undefined) =>
  (v ?? '')
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);

const commaList = (v: string | undefined) =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** configparser's getboolean. */
function getBoolean(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  const b = v.trim().toLowerCase();
  if (['1', 'yes', 'true', 'on'].includes(b)) return true;
  if (['0', 'no', 'false', 'off'].includes(b)) return false;
  throw new ImportError(`${v} is not a boolean as Sydent reads one (true/false, yes/no, on/off, 1/0)`);
}

/** Sydent's `email.tlsmode` (0 / 1 or SSL / 2 or STARTTLS) as Tessera's mail.smtp.tls. */
function tlsMode(mode: string | undefined): 'none' | 'tls' | 'starttls' | undefined {
  if (mode === undefined) return undefined;
  const m = mode.trim().toUpperCase();
  if (m === '0' || m === 'NONE' || m === 'FALSE') return 'none';
  if (m === '1' || m === 'SSL' || m === 'TLS') return 'tls';
  if (m === '2' || m === 'STARTTLS') return 'starttls';
  throw new ImportError(`email.tlsmode ${mode} is not one of 0, 1 (SSL), 2 (STARTTLS)`);
}

/**
 * Only the settings Sydent's configuration decides; everything else keeps Tessera's defaults. `path` resolves a
 * path setting of Sydent's to an existing file or folder, or undefined (then the setting is left out).
 */
export function tesseraConfigFromSydent(
  ini: Ini,
  path: (setting: string, value: string) => string | undefined,
  config: Config,
  warn: (message: string) => void = () => {},
): Record<string, unknown> {
  const get = (section: string, key: string, raw = false) => iniValue(ini, section, key, { raw });
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
  // Sydent reads these two with `value.lower() == "true"`, the [http] ones with configparser's getboolean
  const sydentTrue = (v: string | undefined) => (v === undefined ? undefined : v.toLowerCase() === 'true');
  const v1 = sydentTrue(get('general', 'enable_v1_access'));
  if (v1 !== false && sydentTrue(get('general', 'enable_v1_associations')) === false) {
    warn(
      '[general] enable_v1_associations = false has no Tessera setting: with v1 served, so is v1 binding (server.v1Enabled: false turns all of v1 off)',
    );
  }
  if (get('general', 'ip.blacklist')) {
    warn(
      '[general] ip.blacklist is not carried: Tessera never calls private, loopback or link-local addresses unless federation.allow lists them',
    );
  }
  return prune({
    server: {
      name: get('general', 'server.name'),
      publicBaseUrl,
      v1Enabled: v1 === false ? false : undefined,
      trustProxy: getBoolean(get('http', 'obey_x_forwarded_for')) || undefined,
    },
    federation: {
      verifyTls: getBoolean(get('http', 'federation.verifycerts')) === false ? false : undefined,
      allow: commaList(get('general', 'ip.whitelist')),
    },
    accounts: { allowedServers: commaList(get('general', 'homeserver_allow_list')) },
    database: { url: config.database.url || undefined },
    keys: { signingKeyFile: config.keys.signingKey ? undefined : config.keys.signingKeyFile },
    terms: { file: terms ? path('[general] terms.path', terms) : undefined },
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
      templatesDir: templates ? path('[general] templates.path', templates) : undefined,
      brand: get('general', 'brand.default'),
      webClientUrl: get('email', 'email.default_web_client_location'),
      // Sydent reads these two raw: their %(name)s are filled per invitation, as Tessera does
      inviteSubject: get('email', 'email.invite.subject', true),
      inviteSubjectSpace: get('email', 'email.invite.subject_space', true),
      verificationSubject: get('email', 'email.subject'),
    },
  });
}
