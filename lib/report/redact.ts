/**
 * Secret redaction, applied when the report is made (never earlier, so
 * `--show-secrets` can opt out). Header values that carry credentials and
 * query-string values of credential-like parameters become "[redacted]".
 */

export const REDACTED = '[redacted]';

/** Header names whose values are credentials (RFC 9110 section 11.6, RFC 6265). */
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);
/** Header names that look like they carry a key or token (x-api-key, x-auth-token, x-amz-security-token ...). */
const SECRET_HEADER_PATTERN = /(api[-_]?key|token|secret|password|passwd|signature|session|credential|auth)/i;
/** Query parameters whose values are redacted. */
const SECRET_PARAM_PATTERN = /^(.*[-_])?(token|key|apikey|api_key|signature|sig|password|passwd|pwd|secret|auth|access_token|session|credential)s?$/i;

export function isSecretHeader(name: string): boolean {
  const n = name.toLowerCase();
  return SECRET_HEADERS.has(n) || SECRET_HEADER_PATTERN.test(n);
}

export function redactHeaders(headers: Record<string, string>, show: boolean): Record<string, string> {
  if (show) return { ...headers };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) out[k] = isSecretHeader(k) ? REDACTED : v;
  return out;
}

/** Redact credential-like query parameter values in a request target. */
export function redactTarget(target: string, show: boolean): string {
  if (show) return target;
  const q = target.indexOf('?');
  if (q < 0) return target;
  const hash = target.indexOf('#', q);
  const query = hash < 0 ? target.slice(q + 1) : target.slice(q + 1, hash);
  let changed = false;
  const parts = query.split('&').map((p) => {
    const eq = p.indexOf('=');
    if (eq <= 0) return p;
    let name = p.slice(0, eq);
    try {
      name = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {
      /* keep it raw */
    }
    if (!SECRET_PARAM_PATTERN.test(name)) return p;
    changed = true;
    return p.slice(0, eq + 1) + REDACTED;
  });
  if (!changed) return target;
  return target.slice(0, q + 1) + parts.join('&') + (hash < 0 ? '' : target.slice(hash));
}
