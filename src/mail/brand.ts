// Brands: Sydent-layout template folders, one per brand, under mail.templatesDir.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { MailConfig } from '../platform/config.js';

const SAFE_BRAND = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

/** The requested brand when templates are configured and that folder exists; else null (the default applies). */
export function resolveBrand(mail: MailConfig, requested: unknown): string | null {
  if (!mail.templatesDir || typeof requested !== 'string' || !SAFE_BRAND.test(requested)) return null;
  try {
    return statSync(join(mail.templatesDir, requested)).isDirectory() ? requested : null;
  } catch {
    return null;
  }
}

/**
 * The template name (`brand/file`, relative to templatesDir) for `brand`, falling back to the configured
 * default brand; undefined when neither folder holds `file` (the built-in template applies).
 */
export function templatePath(mail: MailConfig, brand: string | null | undefined, file: string): string | undefined {
  if (!mail.templatesDir) return undefined;
  for (const chosen of [brand, mail.brand]) {
    if (chosen && SAFE_BRAND.test(chosen) && existsSync(join(mail.templatesDir, chosen, file))) return `${chosen}/${file}`;
  }
  return undefined;
}
