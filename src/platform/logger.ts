// Leveled, structured logs (pino): JSON lines for log collectors, readable lines on a terminal (pino-pretty, in
// process). Never pass it tokens, keys, client secrets or full addresses.
import { createRequire } from 'node:module';
import pino from 'pino';
import type { PrettyOptions } from 'pino-pretty';
import { currentRequestId } from './requestContext.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type LogFields = Record<string, unknown>;
/** `json`: one JSON object per line; `pretty`: readable lines; `auto`: pretty on a terminal, JSON otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty';

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/**
 * What an unexpected error may put in the log. Database drivers put the failing values in their
 * messages (duplicate keys, data too long), and those values are tokens, keys and addresses, so
 * for driver errors only the error's name, code and stack frames are logged.
 */
export function loggableError(err: Error): string {
  const e = err as Error & { code?: unknown; errno?: unknown; sqlMessage?: unknown };
  const frames = (e.stack ?? '')
    .split('\n')
    .filter((l) => /^\s+at /.test(l))
    .join('\n');
  if (e.sqlMessage !== undefined || e.errno !== undefined || typeof e.code === 'string') {
    return `${e.name} code=${String(e.code ?? e.errno ?? '?')}\n${frames}`;
  }
  return e.stack ?? `${e.name}: ${e.message}`;
}

/** The fields as logged: an Error (under any name) becomes loggableError's text; the caller's object is not changed. */
function loggable(fields: LogFields): LogFields {
  let out: LogFields | undefined;
  for (const key in fields) {
    const v = fields[key];
    if (v instanceof Error) {
      out ??= { ...fields };
      out[key] = loggableError(v);
    }
  }
  return out ?? fields;
}

/**
 * Field names that only a secret would be logged under. No call site logs them (the rule above); should one ever,
 * its value is replaced rather than written out.
 */
const SECRET_FIELDS = [
  'token',
  'access_token',
  'accessToken',
  'client_secret',
  'clientSecret',
  'private_key',
  'privateKey',
  'ephemeralPrivateKey',
  'password',
  'seed',
  'signingKey',
];

/**
 * Every line written while a request is handled names it (the X-Request-Id the answer carries). A new object per line:
 * pino merges the line's fields into it.
 */
function requestMixin(): object {
  const id = currentRequestId();
  return id === undefined ? {} : { request_id: id };
}

const require = createRequire(import.meta.url);

/**
 * pino-pretty's formatter, used synchronously in this process (not as a worker transport): a line is on the terminal
 * when the call returns, as with the JSON lines. Loaded only when wanted.
 */
function prettifier(colorize: boolean): (line: string) => string {
  const { prettyFactory } = require('pino-pretty') as { prettyFactory(o: PrettyOptions): (line: string) => string };
  return prettyFactory({
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid',
    // Stacks are kept as one string in the JSON line; here they are shown on their own lines.
    customPrettifiers: { err: (v) => (typeof v === 'string' ? v.replace(/\n/g, '\n    ') : JSON.stringify(v)) },
  });
}

/**
 * Lines go to stderr, or to `sink` (one call per line, without its newline; tests capture them). `format` `auto` is
 * pretty only when the lines go to a terminal; to a sink, a pipe or a file they are JSON.
 */
export function createLogger(level: LogLevel = 'info', sink?: (line: string) => void, format: LogFormat = 'auto'): Logger {
  const terminal = sink === undefined && process.stderr.isTTY === true;
  const write = sink ?? ((line: string) => process.stderr.write(`${line}\n`));
  const prettify = format === 'pretty' || (format === 'auto' && terminal) ? prettifier(terminal) : undefined;
  const destination = {
    write(chunk: string) {
      const line = prettify ? prettify(chunk) : chunk;
      write(line.endsWith('\n') ? line.slice(0, -1) : line);
    },
  };
  const p = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: requestMixin,
      // Errors are turned into text before pino sees them (loggable); its own err serializer would add the message.
      serializers: { err: (v: unknown) => v },
      redact: { paths: SECRET_FIELDS, censor: '[redacted]' },
    },
    destination,
  );
  const at = (lvl: Exclude<LogLevel, 'silent'>): ((msg: string, fields?: LogFields) => void) => {
    if (!p.isLevelEnabled(lvl)) return () => {};
    return (msg, fields) => (fields ? p[lvl](loggable(fields), msg) : p[lvl](msg));
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Shows enough of an address to correlate log lines without revealing it. */
export function redactForLog(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return `${address.slice(0, 1)}***`;
  return `${address.slice(0, 1)}***@${address.slice(at + 1, at + 2)}***`;
}
