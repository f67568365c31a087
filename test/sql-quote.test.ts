import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { quoteLiteral } from '../src/sql/quote.js'
import { serverUrl } from './helpers/db.js'

/**
 * A literal built by `quoteLiteral` reads back as the same string on the server
 * whatever `standard_conforming_strings` says, also in a simple-protocol string
 * of several statements (where a literal that ends early runs the rest as SQL).
 */
const HOSTILE = [
  'plain',
  "o'clock",
  'back\\slash',
  "x\\'; select 'injected' as v; --",
  "\\\\'' \\' '\\",
  'ünïcødé \\n not a newline',
]

let client: pg.Client

beforeAll(async () => {
  client = new pg.Client({ connectionString: serverUrl() })
  await client.connect()
})
afterAll(async () => {
  await client.end()
})

describe('quoteLiteral', () => {
  for (const conforming of ['on', 'off']) {
    it(`reads back unchanged with standard_conforming_strings = ${conforming}`, async () => {
      await client.query(`set standard_conforming_strings = ${conforming}`)
      for (const value of HOSTILE) {
        // Several statements in one simple-protocol string: pg returns one result per statement.
        const results = (await client.query(
          `select ${quoteLiteral(value)} as v; select 'end' as v`,
        )) as unknown as pg.QueryResult[]
        expect(results.map((r) => r.rows[0].v)).toEqual([value, 'end'])
      }
      await client.query('reset standard_conforming_strings')
    })
  }

  it('keeps plain quoting for values without a backslash', () => {
    expect(quoteLiteral("o'clock")).toBe("'o''clock'")
    expect(quoteLiteral('a\\b')).toBe("E'a\\\\b'")
  })
})
