/**
 * routeOf groups identifier-like path segments. It runs on every exchange, so
 * it is a one-pass character scanner; this checks it against the definition
 * it replaced (split, three regular expressions, join) on targets built from
 * the edge cases of each rule, with a seeded generator.
 */
import { describe, expect, test } from 'vitest';
import { routeHash, routeKey, routeOf } from '../../lib/diagnose/index.js';

function reference(method: string, target: string): string {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const norm = path
    .split('/')
    .map((seg) => (/^\d+$/.test(seg) || /^[0-9a-f-]{8,}$/i.test(seg) || (seg.length >= 12 && /\d/.test(seg)) ? '{id}' : seg))
    .join('/');
  return `${method} ${norm}`;
}

// Pieces at the edges of each rule: digits, 7/8 hex characters, '-', 11/12 characters with and without a digit.
const PIECES = ['', '/', '//', 'a', '1', '12', 'abc', 'DEADBEEF', 'deadbee', 'dead-beef', '--------', 'files', 'x1234567890y',
  'abcdefghijkl', 'abcdefghijk1', '0', '?', '?x=1/2', '\u00e9', '12345678', 'G', 'g', '%20', '{id}'];

describe('routeOf', () => {
  test('examples', () => {
    expect(routeOf('GET', '/files/abc?detail=summary')).toBe('GET /files/abc');
    expect(routeOf('GET', '/files/3f2a9c0e?x')).toBe('GET /files/{id}');
    expect(routeOf('POST', '/api/v1/orders/379487')).toBe('POST /api/v1/orders/{id}');
    expect(routeOf('GET', '/u/user-2024-11-21x')).toBe('GET /u/{id}');
    expect(routeOf('GET', '*')).toBe('GET *');
  });

  test('same routes as the regular-expression definition on 50,000 generated targets', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let grouped = 0;
    const keys = new Map<string, number>();
    for (let i = 0; i < 50_000; i++) {
      let t = '';
      for (let k = 1 + rnd(6); k > 0; k--) t += PIECES[rnd(PIECES.length)];
      const want = reference('GET', t);
      expect(routeOf('GET', t), JSON.stringify(t)).toBe(want);
      // The statistics key is a hash of the route itself, computed without building it.
      expect(routeKey('GET', t), JSON.stringify(t)).toBe(routeHash(want));
      keys.set(want, routeKey('GET', t));
      if (want.includes('{id}')) grouped++;
    }
    // The generator reaches both outcomes often.
    expect(grouped).toBeGreaterThan(10_000);
    expect(grouped).toBeLessThan(45_000);
    // Different routes, different keys (thousands of distinct routes here).
    expect(keys.size).toBeGreaterThan(5_000);
    expect(new Set(keys.values()).size).toBe(keys.size);
    expect(routeKey('POST', '/files/1')).not.toBe(routeKey('GET', '/files/1'));
  });
});
