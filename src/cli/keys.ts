// tessera keys list | rotate | generate: the long-term signing keys.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { writeNewPrivateFile } from '../platform/privateFile.js';
import { formatSigningKey, parseSigningKey, retiredKeyPath, writeNewKeyFile } from '../keys/KeyRing.js';
import { generateKeyPair } from '../keys/ed25519.js';
import { canonicalKeyString, encodeUnpadded } from '../platform/base64.js';
import { dirname } from 'node:path';
import { CommandError, iso, table, type Context } from './context.js';

type Values = Record<string, string | boolean | undefined>;

/** The key in the configured file, or in the configuration itself. */
function configuredKey(ctx: Context): { keyId: string; publicKey: string; text: string; inline: boolean } {
  const inline = ctx.config.keys.signingKey !== '';
  const file = ctx.config.keys.signingKeyFile;
  if (!inline && !existsSync(file))
    throw new CommandError(`no signing key file at ${file}: start Tessera once, or run tessera keys generate`, 1);
  const text = inline ? ctx.config.keys.signingKey : readFileSync(file, 'utf8');
  const { keyId, pair } = parseSigningKey(text);
  return { keyId, publicKey: encodeUnpadded(pair.publicKey), text, inline };
}

export async function keysList(ctx: Context, values: Values): Promise<void> {
  const current = configuredKey(ctx);
  const { stores } = await ctx.open();
  const now = ctx.now();
  const records = await stores.signingKeys.list();
  const file = ctx.config.keys.signingKeyFile;
  const rows = records.map((r) => {
    const state =
      r.retiredAt === null
        ? 'signing'
        : (r.validUntil ?? 0) > now
          ? `valid until ${iso(r.validUntil!)}`
          : `retired ${iso(r.validUntil ?? r.retiredAt)}`;
    const here = r.keyId === current.keyId || (!current.inline && existsSync(retiredKeyPath(file, r.keyId)));
    return { keyId: r.keyId, publicKey: r.publicKey, state, privateKeyHere: here, createdAt: r.createdAt };
  });
  if (!records.some((r) => r.keyId === current.keyId)) {
    rows.push({
      keyId: current.keyId,
      publicKey: current.publicKey,
      state: 'configured (not yet started)',
      privateKeyHere: true,
      createdAt: now,
    });
  }
  for (const k of ctx.config.keys.trustedOldKeys) {
    rows.push({ keyId: k.keyId, publicKey: k.publicKey, state: 'trusted by keys.trustedOldKeys', privateKeyHere: false, createdAt: 0 });
  }
  if (values.json) {
    ctx.out(JSON.stringify(rows, null, 2));
    return;
  }
  ctx.out(
    table(
      ['KEY ID', 'STATE', 'PRIVATE KEY HERE', 'PUBLIC KEY'],
      rows.map((r) => [r.keyId, r.state, r.privateKeyHere ? 'yes' : 'no', r.publicKey]),
    ),
  );
  const signing = records.find((r) => r.retiredAt === null);
  if (signing && signing.keyId !== current.keyId) {
    ctx.out(
      `\nthe database says ${signing.keyId} signs, but ${current.inline ? 'keys.signingKey' : file} holds ${current.keyId}: copy the key files from the host that rotated`,
    );
  }
}

export async function keysRotate(ctx: Context): Promise<void> {
  const current = configuredKey(ctx);
  if (current.inline) {
    throw new CommandError(
      'the key is given inline (keys.signingKey): replace it there with a new one and list the old public key in keys.trustedOldKeys, or move it to keys.signingKeyFile to rotate with this command',
      1,
    );
  }
  const file = ctx.config.keys.signingKeyFile;
  const { stores } = await ctx.open();
  const now = ctx.now();
  await stores.signingKeys.recordIfAbsent(current.keyId, current.publicKey, now);
  const records = await stores.signingKeys.list();
  const signing = records.find((r) => r.retiredAt === null);
  if (signing && (signing.keyId !== current.keyId || canonicalKeyString(signing.publicKey) !== canonicalKeyString(current.publicKey))) {
    throw new CommandError(
      `the database says ${signing.keyId} signs, but ${file} holds ${current.keyId}: this host's key file is out of date`,
      1,
    );
  }
  // The next key id: one more than the highest numeric version recorded (Sydent's keys are version 0).
  const versions = [...records.map((r) => r.keyId), current.keyId]
    .map((id) => id.slice('ed25519:'.length))
    .filter((v) => /^[0-9]+$/.test(v));
  const next = `ed25519:${versions.length === 0 ? 1 : Math.max(...versions.map(Number)) + 1}`;
  const seed = generateKeyPair().seed;
  const nextText = formatSigningKey(next.slice('ed25519:'.length), seed);
  const nextKey = parseSigningKey(nextText);

  // 1. the current key kept beside the file, for co-signing while it stays valid; 2. the new key ready beside it;
  // 3. the rotation recorded (every instance follows it); 4. the new key in place of the old, atomically.
  const kept = retiredKeyPath(file, current.keyId);
  if (!existsSync(kept)) writeNewPrivateFile(kept, current.text.endsWith('\n') ? current.text : `${current.text}\n`);
  const staged = `${file}.${randomBytes(6).toString('hex')}.new`;
  writeNewPrivateFile(staged, nextText);
  const validUntil = now + ctx.config.keys.rotatedKeyLifetimeMs;
  try {
    await stores.signingKeys.rotate({ keyId: next, publicKey: encodeUnpadded(nextKey.pair.publicKey) }, now, validUntil);
  } catch (err) {
    rmSync(staged, { force: true });
    throw err;
  }
  renameSync(staged, file);
  ctx.out(`${next} signs from now on; ${current.keyId} stays valid until ${iso(validUntil)} (keys.rotatedKeyLifetimeMs)`);
  ctx.out(`the previous key is kept in ${kept}`);
  ctx.out(
    `instances on this host follow within keys.refreshIntervalMs; copy ${file} and ${dirname(kept)}/ to every other host that runs Tessera on this database`,
  );
}

export async function keysGenerate(ctx: Context, values: Values): Promise<void> {
  if (values.print) {
    ctx.out(formatSigningKey('0', generateKeyPair().seed).trimEnd());
    return;
  }
  const file = ctx.config.keys.signingKeyFile;
  if (existsSync(file))
    throw new CommandError(`${file} exists; refusing to replace a key homeservers may already trust (use tessera keys rotate)`, 1);
  writeNewKeyFile(file);
  ctx.out(`wrote ${file}`);
}
