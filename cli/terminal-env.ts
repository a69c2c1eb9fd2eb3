/**
 * Imported first by cli/main.ts, before anything loads ink.
 *
 * ink draws only its final frame when it believes it runs under CI (its
 * is-in-ci check looks at CI, CONTINUOUS_INTEGRATION and CI_* variables, once,
 * when ink is loaded). hangscope draws its dashboard only on a terminal, where
 * someone is watching it live, so on a terminal those variables are hidden from
 * this process. Off a terminal nothing changes.
 */
if (process.stdout.isTTY === true) {
  for (const k of Object.keys(process.env)) {
    if (k === 'CI' || k === 'CONTINUOUS_INTEGRATION' || k.startsWith('CI_')) delete process.env[k];
  }
}
export {};
