/**
 * Fuzzing the whole engine: mutated real captures (the corpus in
 * ../shared/corpus, the lab and decode fixtures) through analyzeCapture()
 * and every renderer (text, JSON, ndjson, HTML), in a worker that is killed
 * when an input hangs.
 *
 * Each input must: end without a throw other than UserError; answer within
 * HANGSCOPE_FUZZ_HANG_MS (default 10 s: a hang); keep the JSON report's
 * invariants (finite numbers, counts that agree); and the worker's heap
 * after garbage collection must stay flat over the run (sampled every 100
 * inputs) under a hard V8 limit (HANGSCOPE_FUZZ_HEAP_MB, default 512).
 *
 * Reproducible: input i of seed S is a function of (S, i) only.
 *   HANGSCOPE_FUZZ_SECONDS  campaign length (default 25)
 *   HANGSCOPE_FUZZ_SEED     seed (default 20250601; "random" picks one and prints it)
 *   HANGSCOPE_FUZZ_SLOW_MS  an input slower than this is reported too (default 5000)
 * A failing input is saved in test/fixtures/fuzz/ (input + JSON saying how it
 * was made and what went wrong) and replayed by the first test on every run.
 *   HANGSCOPE_FUZZ_DUMP=S:i[,S:i...]  only write those inputs to
 *   HANGSCOPE_FUZZ_DUMP_DIR (default /tmp) as fuzz-S-i.bin, to look at one.
 *
 * Needs the build (`npm run build`): the worker runs dist/.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORPUS, FuzzRunner, IN_CI, type Generated, type Outcome, generate, loadFixtures, loadSeeds, saveFixture, signature } from './harness.js';

const SECONDS = Number(process.env.HANGSCOPE_FUZZ_SECONDS ?? 25);
const SEED = process.env.HANGSCOPE_FUZZ_SEED === 'random' ? (Date.now() % 1e9) : Number(process.env.HANGSCOPE_FUZZ_SEED ?? 20250601);
const HANG_MS = Number(process.env.HANGSCOPE_FUZZ_HANG_MS ?? 10_000);
const SLOW_MS = Number(process.env.HANGSCOPE_FUZZ_SLOW_MS ?? 5_000);
const HEAP_MB = Number(process.env.HANGSCOPE_FUZZ_HEAP_MB ?? 512);
/** Heap (after GC) may not grow by more than this between the first and the last sample. */
const HEAP_GROWTH_MB = 48;
const GC_EVERY = 100;

const { seeds, corpus } = loadSeeds();
if (!corpus) {
  if (IN_CI) throw new Error(`fuzz: corpus not found at ${CORPUS}, and CI=true requires it`);
  console.log(`[skip] fuzz: corpus not found at ${CORPUS}: fuzzing the lab and decode fixtures only`);
}

let runner: FuzzRunner;
beforeAll(() => {
  runner = new FuzzRunner({ hangMs: HANG_MS, maxOldGenerationMb: HEAP_MB });
});
afterAll(async () => {
  await runner?.close();
});

function bad(o: Outcome): boolean {
  return o.kind !== 'ok' && o.kind !== 'user-error';
}

const DUMP = process.env.HANGSCOPE_FUZZ_DUMP;

describe.runIf(DUMP !== undefined)('dump inputs', () => {
  it(`writes ${DUMP}`, () => {
    for (const si of (DUMP ?? '').split(',')) {
      const [s, i] = si.split(':').map(Number);
      const g = generate(seeds, s!, i!);
      const f = path.join(process.env.HANGSCOPE_FUZZ_DUMP_DIR ?? '/tmp', `fuzz-${s}-${i}.bin`);
      writeFileSync(f, g.buf);
      console.log(`[fuzz] ${f}: chunk ${g.chunk}, port ${g.port}, showSecrets ${g.showSecrets}; ${g.base}; ${g.mutations.join('; ')}`);
    }
  });
});

describe.skipIf(DUMP !== undefined)('fuzz regression fixtures (test/fixtures/fuzz)', () => {
  const fixtures = loadFixtures();
  it.runIf(fixtures.length === 0)('none saved yet', () => {});
  for (const f of fixtures) {
    it(`${f.name}: ${f.meta.found.kind} ${f.meta.found.message.slice(0, 60)}`, async () => {
      const o = await runner.run(f.c);
      expect(bad(o) ? `${o.kind}: ${o.message}\n${o.stack ?? ''}` : 'fine').toBe('fine');
      expect(o.ms, 'time for the input').toBeLessThan(SLOW_MS);
    });
  }
});

describe.skipIf(DUMP !== undefined)('fuzz campaign', () => {
  it(
    `mutated captures for ${SECONDS} s (seed ${SEED}): no throw but UserError, no hang, heap flat`,
    async () => {
      expect(seeds.length).toBeGreaterThan(0);
      const deadline = Date.now() + SECONDS * 1000;
      const outcomes: Record<string, number> = {};
      const byMutator: Record<string, number> = {};
      /** Inputs in which each anomaly kind was counted: which defences the campaign reached. */
      const byAnomaly: Record<string, number> = {};
      const failures: { g: Generated; o: Outcome; saved: string | null }[] = [];
      const seen = new Set<string>();
      const heap: number[] = [];
      let maxMs = 0;
      let slowest = '';
      let bytes = 0;
      let i = 0;
      for (; Date.now() < deadline; i++) {
        const g = generate(seeds, SEED, i);
        bytes += g.buf.length;
        for (const m of g.mutations) {
          const k = m.split(':')[0]!;
          byMutator[k] = (byMutator[k] ?? 0) + 1;
        }
        let o = await runner.run(g, i % GC_EVERY === GC_EVERY - 1);
        if (!bad(o) && o.ms > SLOW_MS) o = { ...o, kind: 'hang', message: `took ${Math.round(o.ms)} ms (limit ${SLOW_MS})` };
        outcomes[o.kind] = (outcomes[o.kind] ?? 0) + 1;
        for (const k of Object.keys(o.anomalies ?? {})) byAnomaly[k] = (byAnomaly[k] ?? 0) + 1;
        if (o.heapUsed !== undefined) heap.push(o.heapUsed);
        if (o.ms > maxMs) {
          maxMs = o.ms;
          slowest = `#${i} ${g.base} ${g.mutations.join('; ').slice(0, 160)}`;
        }
        if (bad(o)) {
          const sig = signature(o);
          if (!seen.has(sig)) {
            seen.add(sig);
            const saved = failures.length < 20 ? saveFixture(g, o) : null;
            failures.push({ g, o, saved });
            console.log(`[fuzz] input #${i} (${g.base}; ${g.mutations.join('; ').slice(0, 300)}): ${o.kind}: ${o.message}${saved ? `\n  saved ${saved}` : ''}`);
          }
        }
      }
      const mb = (n: number): string => (n / 1048576).toFixed(1);
      console.log(
        `[fuzz] seed ${SEED}: ${i} inputs (${mb(bytes)} MiB) from ${seeds.length} seeds in ${SECONDS} s; outcomes ${JSON.stringify(outcomes)}; ` +
          `distinct failures ${failures.length}; slowest ${Math.round(maxMs)} ms (${slowest}); workers started ${runner.started}; ` +
          `heap after GC (MiB) ${heap.map(mb).join(' ')}`,
      );
      console.log(`[fuzz] mutations applied: ${JSON.stringify(byMutator)}`);
      console.log(`[fuzz] inputs per anomaly kind: ${JSON.stringify(Object.fromEntries(Object.entries(byAnomaly).sort((a, b) => b[1] - a[1])))}`);
      expect(failures.map((f) => `${f.o.kind}: ${f.o.message} (input #${f.g.index}: ${f.g.base})`)).toEqual([]);
      expect(i, 'inputs tried').toBeGreaterThan(10);
      if (heap.length >= 2) {
        const growth = Math.max(...heap) - heap[0]!;
        expect(growth / 1048576, `heap after GC grew from ${mb(heap[0]!)} to ${mb(Math.max(...heap))} MiB`).toBeLessThan(HEAP_GROWTH_MB);
      }
    },
    SECONDS * 1000 + HANG_MS * 4 + 60_000,
  );
});
