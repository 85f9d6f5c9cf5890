// A reader for Sydent's INI configuration, as Python's configparser (which Sydent uses) reads it: `[section]`
// headers, `key = value` or `key: value`, `#` and `;` comment lines, values continued on indented lines, keys
// lower-cased, a `[DEFAULT]` section whose keys every section inherits (older Sydent releases wanted every setting
// there, and Sydent writes its defaults there when it saves the file), and `%(key)s` / `%%` interpolation.

export type Ini = Map<string, Map<string, string>>;

const DEFAULT = 'DEFAULT';

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

function rawValue(ini: Ini, section: string, key: string): string | undefined {
  const k = key.toLowerCase();
  return ini.get(section)?.get(k) ?? ini.get(DEFAULT)?.get(k);
}

/** configparser's BasicInterpolation: `%%` is `%`, `%(name)s` is the value of `name` in the same section (or DEFAULT). */
function interpolate(ini: Ini, section: string, value: string, depth = 0): string {
  if (depth > 10) throw new Error(`[${section}]: interpolation nested too deep`);
  return value.replace(/%(%|\(([^)]+)\)s)/g, (whole, _m: string, name: string | undefined) => {
    if (name === undefined) return '%';
    const ref = rawValue(ini, section, name);
    if (ref === undefined) throw new Error(`[${section}]: ${whole} names no setting`);
    return interpolate(ini, section, ref, depth + 1);
  });
}

/**
 * A value as Sydent reads it (section, else DEFAULT; interpolated unless `raw`, as Sydent reads its invitation
 * subjects), or undefined when missing or empty.
 */
export function iniValue(ini: Ini, section: string, key: string, opts: { raw?: boolean } = {}): string | undefined {
  const v = rawValue(ini, section, key);
  if (v === undefined || v === '') return undefined;
  return opts.raw ? v : interpolate(ini, section, v);
}
