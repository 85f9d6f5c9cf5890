// The HTML page the emailed validation link answers (GET submitToken). Issue 3 owns the real, templated version.
import type { Deps } from '../deps.js';

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function renderVerifyResponsePage(_deps: Deps, opts: { brand?: string | null; message: string }): string {
  const title = escapeHtml(opts.brand || 'Tessera');
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${title}</title></head><body><p>${escapeHtml(opts.message)}</p></body></html>\n`;
}
