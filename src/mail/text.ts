// Escaping and cleaning of user-controlled text for email: HTML, one-line values, truncation.
import type { RandomBytes } from '../platform/random.js';

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/**
 * One line of text: control characters (CR and LF above all) and Unicode line/paragraph separators become
 * spaces. Every user-controlled value passes through this before any template sees it, so no value can
 * end a header line or start a new one, whatever the template does with it.
 */
export function oneLine(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/gu, ' ');
}

/** Keeps the first `max` code points (never cutting a character in half) and marks the cut with `...`. */
export function truncate(s: string, max: number): string {
  const chars = Array.from(s);
  return chars.length > max ? `${chars.slice(0, max).join('')}...` : s;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `n` characters of [A-Za-z0-9] from the injected randomness (boundaries and Message-IDs). */
export function randomAlnum(random: RandomBytes, n: number): string {
  const bytes = random(n);
  let out = '';
  for (let i = 0; i < n; i++) out += ALNUM[bytes[i]! % ALNUM.length];
  return out;
}

/** RFC 5322 date in UTC, e.g. `Sun, 29 Nov 2026 07:11:38 +0000`. */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

/** Sydent's `%(name)s` substitution for configured subjects; unknown names become empty. */
export function pythonFormat(template: string, values: Record<string, string>): string {
  return template.replace(/%\((\w[\w.]*)\)s|%%/g, (m, name: string | undefined) => (name === undefined ? '%' : (values[name] ?? '')));
}
