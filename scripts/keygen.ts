// npm run keygen [-- --print]: writes a new long-term signing key file (mode 0600), or prints one.
import { existsSync } from 'node:fs';
import { loadConfig } from '../src/platform/config.js';
import { formatSigningKey, writeNewKeyFile } from '../src/keys/KeyRing.js';
import { generateKeyPair } from '../src/keys/ed25519.js';

if (process.argv.includes('--print')) {
  process.stdout.write(formatSigningKey('0', generateKeyPair().seed));
} else {
  const config = loadConfig({ argv: process.argv.slice(2) });
  const file = config.keys.signingKeyFile;
  if (existsSync(file)) {
    console.error(`${file} exists; refusing to replace a key homeservers may already trust`);
    process.exit(1);
  }
  writeNewKeyFile(file);
  console.log(`wrote ${file}`);
}
