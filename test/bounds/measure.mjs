#!/usr/bin/env node
/**
 * Memory of one analysis, measured from inside: the capture through the built
 * engine (dist/) with keepConnections false (what --format ndjson does:
 * finished sockets are streamed, not kept) or true (text, json, html keep
 * them for the report), and the heap after a full garbage collection sampled
 * every `every` finished connections and after every chunk read (1 MiB).
 *
 *   node --expose-gc test/bounds/measure.mjs CAPTURE '{"maxConnections":256,"keep":false}'
 *
 * Prints one JSON line: packets, connections, anomalies, heap after GC at the
 * start / highest / at the end (bytes), peak RSS (bytes), seconds.
 */
const [file, optsArg = '{}'] = process.argv.slice(2);
const o = JSON.parse(optsArg);
const { analyzeCapture } = await import(new URL('../../dist/lib/index.js', import.meta.url).href);
if (typeof gc !== 'function') throw new Error('run with node --expose-gc');
const every = o.every ?? 500;

gc();
gc();
const heap0 = process.memoryUsage().heapUsed;
let maxHeap = heap0;
let finished = 0;
const t0 = performance.now();
const a = await analyzeCapture(file, {
  keepConnections: o.keep === true,
  ...(o.maxConnections !== undefined ? { maxConnections: o.maxConnections } : {}),
  ...(o.maxBufferedBytes !== undefined ? { maxBufferedBytes: o.maxBufferedBytes } : {}),
  onConnection: () => {
    if (++finished % every === 0) {
      gc();
      maxHeap = Math.max(maxHeap, process.memoryUsage().heapUsed);
    }
  },
  // Also after every chunk read (1 MiB): what one long connection holds while it is read.
  onProgress: () => {
    gc();
    maxHeap = Math.max(maxHeap, process.memoryUsage().heapUsed);
  },
});
const seconds = (performance.now() - t0) / 1000;
gc();
gc();
const heapEnd = process.memoryUsage().heapUsed;
console.log(
  JSON.stringify({
    packets: a.engine.packets,
    connections: a.engine.connections,
    kept: a.connections.length,
    anomalies: a.engine.anomalies.toJSON(),
    heap0,
    maxHeap: Math.max(maxHeap, heapEnd),
    heapEnd,
    maxRss: process.resourceUsage().maxRSS * 1024,
    seconds,
  }),
);
