// The HTML page answering GET submitToken: the brand's Sydent verify_response_template.html
// when templates are configured (variable `message`, autoescaped), else a small built-in page.
import nunjucks from 'nunjucks';
import type { Deps } from '../deps.js';
import { templatePath } from '../mail/brand.js';
import { escapeHtml } from '../mail/text.js';

export const VERIFY_RESPONSE_TEMPLATE = 'verify_response_template.html';

export function renderVerifyResponsePage(deps: Deps, opts: { brand?: string | null; message: string }): string {
  const { mail } = deps.config;
  const template = templatePath(mail, opts.brand, VERIFY_RESPONSE_TEMPLATE);
  if (template) {
    try {
      const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(mail.templatesDir), { autoescape: true });
      return env.render(template, { message: opts.message });
    } catch (err) {
      deps.log.error('verify response template failed; using the built-in page', { template, err: err as Error });
    }
  }
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Email verification</title></head>',
    '<body style="font-family: Helvetica, Arial, sans-serif; font-size: 15px; max-width: 640px; margin: 2em auto; padding: 0 16px;">',
    `<p>${escapeHtml(opts.message)}</p>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
