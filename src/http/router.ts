// Operation matching, compiled once at start-up (issue 6). openapi-backend's own router rebuilds its operation
// list with lodash and compiles a RegExp per path template on EVERY request; the CPU profile of the benchmark
// showed that as ~20% of a request's CPU. This matcher keeps openapi-backend's semantics exactly (test/unit/
// router.test.ts compares the two): trailing slashes ignored, an exact path wins, otherwise templated paths
// (`{x}` matches one non-empty segment, percent-decoded) ordered by literal length, most specific
// first; no path matches -> 404, a path matches but not the method -> 405.

export interface RouteSpec {
  method: string;
  path: string;
}

export type RouteMatch<Op extends string> =
  | { status: 200; operationId: Op; params: Record<string, string> }
  | { status: 404 | 405 };

interface Compiled<Op> {
  operationId: Op;
  method: string;
  path: string;
  regex: RegExp;
  names: string[];
  literalLength: number;
}

function escapeRegExp(literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Percent-decoded like openapi-backend; a malformed escape stays as sent (openapi-backend threw: a 500). */
function decodeSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

export function compileRoutes<Op extends string>(ops: Record<Op, RouteSpec>): (method: string, rawPath: string) => RouteMatch<Op> {
  const all: Compiled<Op>[] = (Object.entries(ops) as [Op, RouteSpec][]).map(([operationId, spec]) => {
    const names = [...spec.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
    const pattern = spec.path.replace(/\{[^}]+\}/g, '\0').split('\0').map(escapeRegExp).join('([^/]+)');
    return {
      operationId,
      method: spec.method.toLowerCase(),
      path: spec.path,
      regex: new RegExp(`^${pattern}$`),
      names,
      literalLength: spec.path.replace(/\{.*?\}/g, '').length,
    };
  });
  const exact = new Map<string, Compiled<Op>>(all.filter((c) => c.names.length === 0).map((c) => [`${c.method} ${c.path}`, c]));
  // Stable sort, like lodash's orderBy: equal lengths keep document order.
  const templated = [...all].sort((a, b) => b.literalLength - a.literalLength);

  return (method, rawPath) => {
    let path = rawPath.trim();
    if (!path.startsWith('/')) path = `/${path}`;
    const q = path.indexOf('?');
    if (q >= 0) path = path.slice(0, q);
    while (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const m = method.trim().toLowerCase();
    const hit = exact.get(`${m} ${path}`);
    if (hit) return { status: 200, operationId: hit.operationId, params: {} };
    let pathMatched = false;
    for (const c of templated) {
      const found = c.regex.exec(path);
      if (!found) continue;
      pathMatched = true;
      if (c.method !== m) continue;
      const params: Record<string, string> = {};
      c.names.forEach((name, i) => {
        params[name] = decodeSegment(found[i + 1]!);
      });
      return { status: 200, operationId: c.operationId, params };
    }
    return { status: pathMatched ? 405 : 404 };
  };
}
