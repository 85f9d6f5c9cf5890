// Log lines as the logger writes them to a sink (one JSON object per line), for tests that capture them.
export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  time: string;
  msg: string;
  request_id?: string;
  [field: string]: unknown;
}

export function parseLog(line: string): LogLine {
  return JSON.parse(line) as LogLine;
}

/** The lines at `level` (any letter case: `WARN`, `info`) whose message starts with `message`. */
export function linesAt(lines: string[], level: string, message = ''): LogLine[] {
  return lines.map(parseLog).filter((l) => l.level === level.toLowerCase() && l.msg.startsWith(message));
}
