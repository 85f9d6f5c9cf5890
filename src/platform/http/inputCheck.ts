// Checks every request's input at the door, before the generated validators: how deep a body nests, and that
// every string a client sent (body values and keys at any depth, query and path parameters) is text that can be
// stored, signed, put in a link and emailed.
import { isUtf8 } from 'node:buffer';
import { MatrixError, shownName } from './errors.js';

/**
 * The deepest a request body may nest, the body itself being level 1. The deepest legitimate identity-API body is
 * v1 bulk_lookup's array of arrays (3); X-Matrix verification and canonical JSON recurse over a body, and so would
 * any JSON.stringify of it, so this bounds their stack use. Parsing itself does not recurse (V8's JSON.parse is
 * iterative; form bodies nest 5 at most), so a deeper body is read, then refused here.
 */
export const MAX_BODY_DEPTH = 32;

type WellFormedString = string & { isWellFormed(): boolean };

/**
 * Why `s` cannot be accepted as text, or undefined. A lone surrogate is no Unicode at all: it cannot be encoded
 * as UTF-8 (a link's encodeURIComponent throws on it, and a database stores U+FFFD instead); U+0000 ends a C
 * string and no email can carry it.
 */
export function textProblem(s: string): string | undefined {
  if (!(s as WellFormedString).isWellFormed()) return 'is not well-formed Unicode (a lone surrogate)';
  if (s.includes('\u0000')) return 'contains U+0000';
  return undefined;
}

function invalid(field: string, problem: string): MatrixError {
  return new MatrixError(400, 'M_INVALID_PARAM', `Invalid parameter '${shownName(field)}': ${problem}`);
}

/**
 * Walks a parsed body (a plain object) without recursion, so no nesting can overflow the stack here. Returns the
 * first problem as `400 M_INVALID_PARAM` naming the top-level field it was found under, or undefined.
 */
export function checkBody(body: Record<string, unknown>): MatrixError | undefined {
  const stack: [value: unknown, depth: number, field: string][] = [];
  for (const [key, value] of Object.entries(body)) {
    const problem = textProblem(key);
    if (problem) return invalid(key, `the field name ${problem}`);
    stack.push([value, 2, key]);
  }
  while (stack.length > 0) {
    const [value, depth, field] = stack.pop()!;
    if (typeof value === 'string') {
      const problem = textProblem(value);
      if (problem) return invalid(field, problem);
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    if (depth > MAX_BODY_DEPTH) return invalid(field, `nests deeper than ${MAX_BODY_DEPTH} levels`);
    if (Array.isArray(value)) {
      for (const item of value) stack.push([item, depth + 1, field]);
      continue;
    }
    for (const [key, item] of Object.entries(value)) {
      const problem = textProblem(key);
      if (problem) return invalid(field, `a field name in it ${problem}`);
      stack.push([item, depth + 1, field]);
    }
  }
  return undefined;
}

/** Query or path parameters as parsed (a string, or an array for a repeated query parameter). */
export function checkParameters(params: Record<string, unknown>): MatrixError | undefined {
  for (const [name, value] of Object.entries(params)) {
    const problem = textProblem(name);
    if (problem) return invalid(name, `the parameter name ${problem}`);
    for (const one of Array.isArray(value) ? value : [value]) {
      if (typeof one !== 'string') continue;
      const found = textProblem(one);
      if (found) return invalid(name, found);
    }
  }
  return undefined;
}

/** `%XX` escapes as the bytes they stand for, everything else as it came (a request target is read as latin1). */
function percentBytes(raw: string): Buffer {
  return Buffer.from(
    raw.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
    'latin1',
  );
}

/**
 * The raw query string (what follows `?`), each name and value of which must percent-decode to UTF-8. The parsed
 * query cannot tell: Node's querystring turns bytes that are not UTF-8 (among them `%ED%A0%80`, a lone surrogate
 * encoded as if it were a character) into U+FFFD, silently changing the value.
 */
export function checkRawQuery(raw: string): MatrixError | undefined {
  if (!/[%\u0080-\uffff]/.test(raw)) return undefined;
  for (const part of raw.split('&')) {
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    const nameOk = isUtf8(percentBytes(name));
    if (nameOk && isUtf8(percentBytes(value))) continue;
    const shown = nameOk ? percentBytes(name).toString('utf8').replace(/\+/g, ' ') : name;
    return invalid(shown, nameOk ? 'is not UTF-8 once percent-decoded' : 'the parameter name is not UTF-8 once percent-decoded');
  }
  return undefined;
}
