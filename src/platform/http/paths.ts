// The two API base paths.

export const V1_BASE = '/_matrix/identity/api/v1';
export const V2_BASE = '/_matrix/identity/v2';

export function basePath(version: 'v1' | 'v2'): string {
  return version === 'v1' ? V1_BASE : V2_BASE;
}
