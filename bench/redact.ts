/**
 * `npx tsx bench/redact.ts [--rounds R]`: how `hidePasswords` (every line the CLI prints goes
 * through it) scales with the length of one line, on the shapes that make a password pattern
 * scan far: many `//host:` words with no `@` (`http://h:x http://h:x ...`), one word of
 * `//a://a:...`, and a login whose password runs across spaces (`postgres://app:p p p ...`).
 * Anchor: `hidePasswords` on ordinary prose of the same length, in the same rounds. A ratio that
 * stays flat as the line doubles is linear; one that doubles with it is quadratic.
 * Time per call is the best of R rounds (9); the machine is shared, so read ratios, not times.
 */
import { parseArgs } from 'node:util'
import { hidePasswords } from '../src/sql/redact.js'

const { values } = parseArgs({ options: { rounds: { type: 'string' } } })
const ROUNDS = Number(values.rounds ?? 9)

const fill = (unit: string, length: number) =>
  unit.repeat(Math.ceil(length / unit.length)).slice(0, length)
const shapes: Record<string, (length: number) => string> = {
  'http://h:x words': (n) => fill('http://h:x ', n),
  '//a: one word': (n) => fill('//a:', n),
  'password with spaces': (n) => `postgres://app:${fill('p ', n - 15)}`,
}
const prose = (n: number) =>
  fill('could not connect to the server: connection refused; check the host ', n)

function best(text: string): number {
  let min = Number.POSITIVE_INFINITY
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now()
    hidePasswords(text)
    min = Math.min(min, performance.now() - t0)
  }
  return min
}

console.log(
  `hidePasswords on one line; anchor: the same call on prose of the same length; best of ${ROUNDS}`,
)
for (const length of [10_000, 20_000, 40_000, 80_000]) {
  const anchor = best(prose(length))
  const cells = Object.entries(shapes).map(
    ([name, make]) => `${name} ${(best(make(length)) / anchor).toFixed(1)}x`,
  )
  console.log(
    `  ${String(length).padStart(6)} chars: prose ${anchor.toFixed(2)} ms; ${cells.join('; ')}`,
  )
}
