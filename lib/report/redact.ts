/**
 * Secret redaction, applied when the report is made (never earlier, so
 * `--show-secrets` can opt out). Header values that carry credentials,
 * query-string values of credential-like parameters (in the request target
 * and in URLs inside other header values, such as Referer and Location) and
 * the password of a URL's userinfo become "[redacted]".
 */

export const REDACTED = '[redacted]';

/** Header names whose values are credentials (RFC 9110 section 11.6, RFC 6265). */
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'cookie2', 'set-cookie2']);
/**
 * Header names that look like they carry a key or token: x-api-key, x-auth-token,
 * x-amz-security-token, x-csrf-token, x-hub-signature, x-functions-key,
 * ocp-apim-subscription-key, x-session-id ...
 */
const SECRET_HEADER_PATTERN =
  /(api[-_]?key|token|secret|password|passwd|signature|session|credential|auth|cookie|(^|[-_])(key|sig|pwd|jwt)s?($|[-_]))/i;
/**
 * Query parameter names whose values are redacted: the name ends in one of
 * these words, at the start, after a separator (`-`, `_`, `.`, `[`) or at a
 * camelCase boundary (accessToken, X-Amz-Signature, client_secret, apiKey,
 * user[password]); `monkey` and `config` are not redacted. `code` only alone
 * (the OAuth authorization code, RFC 6749 section 4.1.2).
 */
const SECRET_PARAM_WORDS =
  /(?:^|[-_.[])(token|key|apikey|signature|sig|password|passwd|pwd|pass|secret|auth|session|sessionid|sid|credential|jwt)s?\]?$|^code$/;

/**
 * Answers for names already seen: a report asks about the same few header and
 * parameter names for every exchange (hundreds of thousands in a large
 * capture). Bounded: cleared when full.
 */
const MEMO_MAX = 4096;
const secretHeaderMemo = new Map<string, boolean>();
const secretParamMemo = new Map<string, boolean>();

export function isSecretHeader(name: string): boolean {
  let r = secretHeaderMemo.get(name);
  if (r === undefined) {
    const n = name.toLowerCase();
    r = SECRET_HEADERS.has(n) || SECRET_HEADER_PATTERN.test(n);
    if (secretHeaderMemo.size >= MEMO_MAX) secretHeaderMemo.clear();
    secretHeaderMemo.set(name, r);
  }
  return r;
}

function isSecretParam(rawName: string): boolean {
  let r = secretParamMemo.get(rawName);
  if (r === undefined) {
    r = isSecretParamName(rawName);
    if (secretParamMemo.size >= MEMO_MAX) secretParamMemo.clear();
    secretParamMemo.set(rawName, r);
  }
  return r;
}

function isSecretParamName(rawName: string): boolean {
  let name = rawName;
  try {
    name = decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    /* keep it raw */
  }
  // accessToken -> access_token: a camelCase boundary counts as a separator.
  return SECRET_PARAM_WORDS.test(name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase());
}

export function redactHeaders(headers: Record<string, string>, show: boolean): Record<string, string> {
  if (show) return { ...headers };
  const out: Record<string, string> = {};
  for (const k of Object.keys(headers)) out[k] = isSecretHeader(k) ? REDACTED : redactUrls(headers[k]!);
  return out;
}

/**
 * The password of a URL's userinfo (`scheme://user:password@host`, RFC 3986
 * section 3.2.1, deprecated but still sent to proxies and seen in Referer).
 */
function redactUserinfo(s: string): string {
  if (!s.includes('@')) return s;
  return s.replace(/(\/\/[^\s/?#@:]*):[^\s/?#@]*@/g, `$1:${REDACTED}@`);
}

/** Credential-like query values (and userinfo passwords) in URLs inside a header value. */
function redactUrls(v: string): string {
  let out = redactUserinfo(v);
  if (!out.includes('?') || !out.includes('=')) return out;
  // Each URL-ish run: from a '?' to the next whitespace, quote or angle bracket.
  out = out.replace(/\?[^\s"'<>]*/g, (q) => redactQuery(q.slice(1), q));
  return out;
}

/** The query without its '?', redacted; `whole` (with the '?') when nothing changed. */
function redactQuery(query: string, whole: string): string {
  const hash = query.indexOf('#');
  const q = hash < 0 ? query : query.slice(0, hash);
  let changed = false;
  const parts = q.split(/([&;])/).map((p, i) => {
    if (i % 2 === 1) return p; // a separator
    const eq = p.indexOf('=');
    if (eq <= 0 || !isSecretParam(p.slice(0, eq))) return p;
    changed = true;
    return p.slice(0, eq + 1) + REDACTED;
  });
  if (!changed) return whole;
  return `?${parts.join('')}${hash < 0 ? '' : query.slice(hash)}`;
}

/** Redact credential-like query parameter values, and a userinfo password, in a request target. */
export function redactTarget(target: string, show: boolean): string {
  if (show) return target;
  const t = redactUserinfo(target);
  const q = t.indexOf('?');
  if (q < 0) return t;
  return t.slice(0, q) + redactQuery(t.slice(q + 1), t.slice(q));
}
