// A reader for Sydent's INI configuration (Python configparser's layout): `[section]` headers, `key = value` or
// `key: value`, `#` and `;` comment lines, values continued on indented lines. Sections and keys keep their case
// as written except keys, which configparser lower-cases.

export type Ini = Map<string, Map<string, string>>;

export function parseIni(text: string): Ini {
  const out: Ini = new Map();
  let section: Map<string, string> | undefined;
  let lastKey: string | undefined;
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    if (/^\s*([#;].*)?$/.test(raw)) continue;
    if (/^\s/.test(raw) && section && lastKey !== undefined) {
      section.set(lastKey, `${section.get(lastKey)}\n${raw.trim()}`);
      continue;
    }
    const header = /^\[([^\]]+)\]\s*$/.exec(raw);
    if (header) {
      section = out.get(header[1]!) ?? new Map<string, string>();
      out.set(header[1]!, section);
      lastKey = undefined;
      continue;
    }
    const pair = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(raw);
    if (!pair || !section) throw new Error(`line ${i + 1}: not "[section]" or "key = value"`);
    lastKey = pair[1]!.toLowerCase();
    section.set(lastKey, pair[2]!.trim());
  }
  return out;
}

/** A value, or undefined when the section or key is missing or empty. */
export function iniValue(ini: Ini, section: string, key: string): string | undefined {
  const v = ini.get(section)?.get(key.toLowerCase());
  return v === undefined || v === '' ? undefined : v;
}
