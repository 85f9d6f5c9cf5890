// Terms of service from a file in Sydent's YAML layout, so operators migrate it unchanged:
//
//   master_version: "1.0"            (optional, informational)
//   docs:
//     terms_of_service:
//       version: "2.0"
//       langs:
//         en: { name: "Terms of Service", url: "https://example.org/terms-2.0-en.html" }
//         fr: { name: "Conditions d'utilisation", url: "https://example.org/terms-2.0-fr.html" }
//
// Accepting the URL of any language of a policy version accepts that version (all languages).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export interface PolicyLanguage {
  name: string;
  url: string;
}

export interface Policy {
  /** The key under `docs` (the policy's id). */
  id: string;
  version: string;
  langs: Record<string, PolicyLanguage>;
}

/** One accepted policy version. */
export interface Acceptance {
  policy: string;
  version: string;
}

export class TermsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TermsError';
  }
}

const MAX_FIELD = 128;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class Terms {
  /** URL -> the policy version it belongs to. */
  private readonly byUrl = new Map<string, Acceptance>();

  constructor(
    readonly policies: Policy[],
    readonly masterVersion?: string,
  ) {
    for (const p of policies) for (const lang of Object.values(p.langs)) this.byUrl.set(lang.url, { policy: p.id, version: p.version });
  }

  static none(): Terms {
    return new Terms([]);
  }

  /** Reads a terms file; an empty path means no terms. Throws TermsError naming every problem found first. */
  static load(file: string): Terms {
    if (!file) return Terms.none();
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new TermsError(`terms file ${file}: ${(err as Error).message}`);
    }
    return Terms.parse(text, file);
  }

  /** Parses Sydent's layout. Scalars stay strings (`version: 2.0` is "2.0", as Sydent shows it). */
  static parse(text: string, where = 'terms'): Terms {
    let doc: unknown;
    try {
      doc = parseYaml(text, { schema: 'failsafe' });
    } catch (err) {
      throw new TermsError(`${where}: ${(err as Error).message.split('\n')[0]}`);
    }
    if (doc === null || doc === undefined || doc === '') return Terms.none();
    if (!isObject(doc)) throw new TermsError(`${where}: must be a mapping with a 'docs' key`);
    const problems: string[] = [];
    const master = doc.master_version;
    if (master !== undefined && typeof master !== 'string') problems.push('master_version must be a string');
    const docs = doc.docs ?? {};
    if (!isObject(docs)) throw new TermsError(`${where}: 'docs' must be a mapping of policy id to policy`);
    const policies: Policy[] = [];
    const urls = new Set<string>();
    for (const [id, raw] of Object.entries(docs)) {
      if (!isObject(raw)) {
        problems.push(`docs.${id} must be a mapping`);
        continue;
      }
      if (id.length > MAX_FIELD) problems.push(`docs.${id}: policy id longer than ${MAX_FIELD} characters`);
      const version = raw.version;
      if (typeof version !== 'string' || version === '' || version.length > MAX_FIELD)
        problems.push(`docs.${id}.version must be a non-empty string of at most ${MAX_FIELD} characters`);
      const langsRaw = raw.langs;
      if (!isObject(langsRaw) || Object.keys(langsRaw).length === 0) {
        problems.push(`docs.${id}.langs must map at least one language to {name, url}`);
        continue;
      }
      const langs: Record<string, PolicyLanguage> = {};
      for (const [lang, entry] of Object.entries(langsRaw)) {
        if (lang === 'version') problems.push(`docs.${id}.langs: 'version' cannot be a language`);
        if (!isObject(entry) || typeof entry.name !== 'string' || typeof entry.url !== 'string' || entry.url === '') {
          problems.push(`docs.${id}.langs.${lang} must have string name and url`);
          continue;
        }
        if (urls.has(entry.url)) problems.push(`docs.${id}.langs.${lang}: url ${entry.url} is used twice`);
        urls.add(entry.url);
        langs[lang] = { name: entry.name, url: entry.url };
      }
      if (typeof version === 'string') policies.push({ id, version, langs });
    }
    if (problems.length > 0) throw new TermsError(`${where}:\n  - ${problems.join('\n  - ')}`);
    return new Terms(policies, typeof master === 'string' ? master : undefined);
  }

  /** The body of GET /terms. */
  toResponse(): { policies: Record<string, Record<string, unknown>> } {
    const policies: Record<string, Record<string, unknown>> = {};
    for (const p of this.policies) policies[p.id] = { version: p.version, ...p.langs };
    return { policies };
  }

  /** The current policy versions the given URLs accept; URLs of no current policy are ignored. */
  acceptancesFor(urls: readonly string[]): Acceptance[] {
    const out = new Map<string, Acceptance>();
    for (const url of urls) {
      const a = this.byUrl.get(url);
      if (a) out.set(`${a.policy}\u0000${a.version}`, a);
    }
    return [...out.values()];
  }

  /** True when every current policy version is among `accepted` (always true without terms). */
  allAccepted(accepted: readonly Acceptance[]): boolean {
    return this.policies.every((p) => accepted.some((a) => a.policy === p.id && a.version === p.version));
  }

  get empty(): boolean {
    return this.policies.length === 0;
  }
}
