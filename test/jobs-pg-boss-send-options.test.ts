/**
 * pg-boss 10's `send` is handed each tenant job's options with the fields it
 * sets already there (`pgBossSendOptions`, a Node 20 speed fix): what pg-boss
 * stores, and what it refuses, must be what it would with the options as given.
 */
import PgBoss from 'pg-boss'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { pgBossSendOptions } from '../src/jobs/pg-boss-send-options.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

let db: TestDatabase
let boss: PgBoss

beforeAll(async () => {
  db = await createTestDatabase('pgboss_send_options')
  boss = new PgBoss({ connectionString: db.url, schema: 'pgboss', max: 2, schedule: false })
  boss.on('error', () => {})
  await boss.start()
  for (const q of ['given', 'shaped', 'dl']) await boss.createQueue(q, { name: q })
}, 60_000)

afterAll(async () => {
  await boss?.stop({ graceful: false, wait: true })
  await db?.drop()
})

/** What pg-boss stored for a job, without what differs between any two jobs (id, times). */
async function stored(queue: string, id: string) {
  const { rows } = await db.pool.query(
    `select priority, retry_limit, retry_delay, retry_backoff, expire_in, singleton_key,
            singleton_on is not null as singleton, dead_letter, policy, data,
            round(extract(epoch from start_after - created_on)) as starts_in,
            round(extract(epoch from keep_until - start_after)) as kept_for
       from pgboss.job where name = $1 and id = $2`,
    [queue, id],
  )
  return rows[0]
}

const IN_AN_HOUR = new Date(Date.now() + 3_600_000)

const CASES: [string, Record<string, unknown>][] = [
  ['no options', {}],
  ['a singletonKey (every tenant job has one)', { singletonKey: '7/' }],
  ['priority', { priority: 3, singletonKey: '7/' }],
  ['priority 0', { priority: 0 }],
  ['startAfter as a Date', { startAfter: IN_AN_HOUR }],
  ['startAfter in seconds', { startAfter: 90 }],
  ['startAfter as text', { startAfter: IN_AN_HOUR.toISOString() }],
  ['singletonSeconds', { singletonSeconds: 60, singletonKey: '7/a' }],
  ['singletonMinutes', { singletonMinutes: 2 }],
  ['singletonHours', { singletonHours: 1 }],
  ['retries', { retryLimit: 5, retryDelay: 2, retryBackoff: true }],
  ['expireInSeconds', { expireInSeconds: 30 }],
  ['expireInMinutes', { expireInMinutes: 2 }],
  ['expireInHours', { expireInHours: 1 }],
  ['retentionDays', { retentionDays: 3 }],
  ['retentionSeconds', { retentionSeconds: 100 }],
  ['deadLetter', { deadLetter: 'dl' }],
  [
    'fields pg-boss sets itself, given anyway',
    { expireIn: 5, keepUntil: 'x', retryLimitDefault: 9 },
  ],
]

describe('pgBossSendOptions: pg-boss stores the same job as with the options as given', () => {
  // Each case on empty queues: a singleton slot of an earlier case can be the same one (at a
  // full hour the 2-minute slot and the hour's both start then), and pg-boss drops the job.
  beforeEach(async () => {
    await db.pool.query(`delete from pgboss.job where name in ('given', 'shaped')`)
  })

  for (const [label, options] of CASES) {
    it(label, async () => {
      const given = await boss.send('given', { n: 1 }, { ...options })
      const shaped = await boss.send('shaped', { n: 1 }, pgBossSendOptions({ ...options }))
      expect(given).toBeTruthy()
      expect(shaped).toBeTruthy()
      expect(await stored('shaped', shaped!)).toEqual(await stored('given', given!))
    })
  }

  it('refuses what pg-boss refuses, with the same message', async () => {
    const refused: Record<string, unknown>[] = [
      { priority: undefined },
      { priority: 1.5 },
      { retryLimit: -1 },
      { deadLetter: 7 },
      { expireInSeconds: 0 },
      { singletonSeconds: 10 ** 9 },
    ]
    for (const options of refused) {
      const given = await boss.send('given', { n: 1 }, { ...options }).catch((e: Error) => e)
      const shaped = await boss
        .send('shaped', { n: 1 }, pgBossSendOptions({ ...options }))
        .catch((e: Error) => e)
      expect(given).toBeInstanceOf(Error)
      expect((shaped as Error).message).toBe((given as Error).message)
    }
  })

  it('leaves the options it is given as they were', () => {
    const options = { singletonKey: '7/', retryLimit: 2 }
    pgBossSendOptions(options)
    expect(options).toEqual({ singletonKey: '7/', retryLimit: 2 })
  })
})
