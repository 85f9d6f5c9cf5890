// GET /_matrix/identity/versions and the status endpoints (GET of each base path).
import type { Reply, Req } from './types.js';

/** Specification versions whose identity API we serve, oldest first. */
export const SUPPORTED_VERSIONS = [
  'r0.1.0',
  'r0.2.0',
  'r0.2.1',
  'r0.3.0',
  'v1.1',
  'v1.2',
  'v1.3',
  'v1.4',
  'v1.5',
  'v1.6',
  'v1.7',
  'v1.8',
  'v1.9',
  'v1.10',
  'v1.11',
  'v1.12',
  'v1.13',
  'v1.14',
  'v1.15',
  'v1.16',
  'v1.17',
  'v1.18',
  'v1.19',
];

export async function handleGetVersions(_req: Req<'getVersions'>): Promise<Reply<'getVersions'>> {
  return { status: 200, body: { versions: SUPPORTED_VERSIONS } };
}

export async function handleGetStatus(_req: Req<'pingV2'> | Req<'v1Status'>): Promise<Reply<'pingV2'>> {
  return { status: 200, body: {} };
}
