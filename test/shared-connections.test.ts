import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { readAll, sharedConnections } from '../src/sql/queryable.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'

/**
 * `sharedConnections`: connections already checked out, as one handle for independent reads.
 * Each read goes to an idle connection; a connection given later joins once it is there.
 * Concurrency is shown without timing: one read waits on a lock that is released only after
 * the other read has answered, which it can only do on the other connection.
 */
let db: TestDatabase
let a: pg.PoolClient
let b: pg.PoolClient
let holder: pg.PoolClient

beforeAll(async () => {
  db = await createTestDatabase('shared_connections')
  a = await db.pool.connect()
  b = await db.pool.connect()
  holder = await db.pool.connect()
})
afterAll(async () => {
  for (const c of [a, b, holder]) c.release()
  await db.drop()
})

const pid = async (q: { query: pg.Pool['query'] } | ReturnType<typeof sharedConnections>) =>
  Number((await q.query('select pg_backend_pid() as p')).rows[0].p)

it('sends independent reads at once, each to an idle connection', async () => {
  const shared = sharedConnections(a, Promise.resolve(b))
  await Promise.resolve()
  expect(shared.connections).toBe(2)
  await holder.query('select pg_advisory_lock(4242)')
  let waiting: Promise<number> | undefined
  const [blocked, free] = await readAll(shared, [
    () => {
      waiting = shared
        .query('select pg_backend_pid() as p from pg_advisory_lock(4242)')
        .then((r) => Number(r.rows[0].p))
      return waiting
    },
    async () => {
      // Answers while the first read waits on the lock: on the other connection.
      const p = await pid(shared)
      await holder.query('select pg_advisory_unlock(4242)')
      return p
    },
  ])
  await a.query('select pg_advisory_unlock_all()')
  await b.query('select pg_advisory_unlock_all()')
  expect(new Set([blocked, free])).toEqual(new Set([await pid(a), await pid(b)]))
})

it('uses only the first connection until the later one is there; one that never comes is not waited for', async () => {
  let join: (c: pg.PoolClient | undefined) => void = () => {}
  const shared = sharedConnections(
    a,
    new Promise<pg.PoolClient | undefined>((resolve) => {
      join = resolve
    }),
  )
  const first = await pid(a)
  expect(await Promise.all([pid(shared), pid(shared), pid(shared)])).toEqual([first, first, first])
  expect(shared.connections).toBe(1)
  join(b)
  await Promise.resolve()
  expect(shared.connections).toBe(2)
  // Idle again: the first connection given goes first.
  expect(await pid(shared)).toBe(first)

  const alone = sharedConnections(a, Promise.resolve(undefined))
  const failing = sharedConnections(a, Promise.reject(new Error('no second connection')))
  await Promise.resolve()
  expect([alone.connections, failing.connections]).toEqual([1, 1])
  expect(await pid(alone)).toBe(first)
  expect(await pid(failing)).toBe(first)
})

it('a connection whose read failed takes no more reads while another is left; alone, it goes on', async () => {
  const shared = sharedConnections(a, Promise.resolve(b))
  await Promise.resolve()
  await a.query('begin')
  // The first read goes to the first connection: it fails there, in a transaction.
  await expect(shared.query('select 1 / 0')).rejects.toThrow(/division by zero/)
  expect(shared.connections).toBe(1)
  // The reads after it do not meet that failed transaction.
  expect(await Promise.all([pid(shared), pid(shared)])).toEqual([await pid(b), await pid(b)])
  await a.query('rollback')
  await expect(shared.query('select nope')).rejects.toThrow(/nope/)
  expect(shared.connections).toBe(1)
  expect(await pid(shared)).toBe(await pid(b))
})
