import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import * as net from 'node:net'
import { type Processor, Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { freePort } from './embedded-server.js'

/**
 * A Redis for one test file: the machine's (REDIS_URL, else 127.0.0.1:6379)
 * when it answers PING, else a `redis-server` started on a free port. Each
 * file gets its own key prefix; nothing is flushed.
 */
export interface TestRedis {
  readonly host: string
  readonly port: number
  /** A unique BullMQ key prefix for this file. */
  readonly prefix: string
  readonly source: 'machine' | 'started'
  /** Stops the started server (the machine's is left alone). */
  stop(): Promise<void>
}

function ping(host: string, port: number, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (d: Buffer) => done(d.toString().startsWith('+PONG')))
  })
}

/** Finds or starts a Redis; throws (never skips) when neither is possible. */
export async function openTestRedis(): Promise<TestRedis> {
  const prefix = `rt-test-${randomBytes(4).toString('hex')}`
  const url = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
  const host = url.hostname
  const port = Number(url.port || 6379)
  if (await ping(host, port)) {
    return { host, port, prefix, source: 'machine', stop: async () => {} }
  }
  const own = await freePort()
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(own), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  )
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve))
  for (let i = 0; i < 50; i++) {
    const failed = await Promise.race([
      spawnError,
      new Promise((r) => setTimeout(r, 100, undefined)),
    ])
    if (failed) {
      throw new Error(
        `No Redis at ${host}:${port} and redis-server could not start (${(failed as Error).message}). ` +
          'Install it with .ci/redis.sh (Debian: apt-get install redis-server) or set REDIS_URL.',
      )
    }
    if (await ping('127.0.0.1', own)) {
      return {
        host: '127.0.0.1',
        port: own,
        prefix,
        source: 'started',
        async stop() {
          child.kill('SIGTERM')
        },
      }
    }
  }
  child.kill('SIGKILL')
  throw new Error(`redis-server started on port ${own} but did not answer PING within 5 s.`)
}

/** A BullMQ queue and its worker on a test Redis, each on a connection of its own. */
export interface BullPair {
  readonly queue: Queue
  readonly worker: Worker
  /** Closes the worker, removes the queue's keys, closes the queue and both connections. */
  close(): Promise<void>
}

/** Opens a {@link BullPair} for queue `name` on `redis` (the Redis itself stays up). */
export function openBullPair(redis: TestRedis, name: string, processor: Processor): BullPair {
  const connect = () =>
    new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
  const [c1, c2] = [connect(), connect()]
  const queue = new Queue(name, { connection: c1, prefix: redis.prefix })
  const worker = new Worker(name, processor, { connection: c2, prefix: redis.prefix })
  return {
    queue,
    worker,
    async close() {
      await worker.close()
      await queue.obliterate({ force: true }).catch(() => {})
      await queue.close()
      c1.disconnect()
      c2.disconnect()
    },
  }
}
