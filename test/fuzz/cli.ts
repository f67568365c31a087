/**
 * `npm run fuzz -- [--cases N] [--seed S] [--max-ops M] [--binding set_local]`: runs the isolation
 * fuzzer (test/fuzz-isolation.test.ts) with more cases than CI does. A random
 * seed is chosen (and printed) unless `--seed` is given; replay a failure with
 * the printed seed.
 *
 * @example
 * ```sh
 * npm run fuzz -- --cases 500
 * npm run fuzz -- --seed 123456 --cases 40
 * ```
 */
import { spawnSync } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '200' },
    seed: { type: 'string' },
    'max-ops': { type: 'string', default: '40' },
    binding: { type: 'string', default: 'set_config' },
  },
})
const positive = (name: string, raw: string | undefined): string => {
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < 1) {
    console.error(`--${name} must be a positive whole number, not ${JSON.stringify(raw)}.`)
    process.exit(2)
  }
  return String(n)
}
const seed =
  values.seed === undefined ? String(randomInt(1, 2 ** 31)) : positive('seed', values.seed)
const env = {
  ...process.env,
  FUZZ_CASES: positive('cases', values.cases),
  FUZZ_SEED: seed,
  FUZZ_MAX_OPS: positive('max-ops', values['max-ops']),
  FUZZ_BINDING: values.binding === 'set_local' ? 'set_local' : 'set_config',
}
console.log(
  `fuzz: seed ${seed}, ${env.FUZZ_CASES} cases, binding ${env.FUZZ_BINDING} (replay with --seed ${seed})`,
)
const r = spawnSync('npx', ['vitest', 'run', 'test/fuzz-isolation.test.ts'], {
  stdio: 'inherit',
  env,
})
process.exit(r.status ?? 1)
