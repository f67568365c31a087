/**
 * `npx tsx bench/jobs-bullmq-envelope.ts [--rounds R] [--note N]`: what the envelope's bytes
 * alone cost BullMQ, with no rowtenancy code running. The bare BullMQ client sends three shapes
 * of data, each on a queue of its own, in rounds of 2,000 jobs whose order rotates (`--rounds`,
 * 60; the first 3 are warm-up):
 * - `bare`: `{ i, tenantId }`, the anchor (what bench/jobs.ts's bare side sends);
 * - `unsigned`: `{ rowtenancy: { v, tenant }, payload: { i } }`, an unsigned envelope's shape;
 * - `signed`: the same with a 22-character `sig`, a signed envelope's shape.
 * `--note N` adds an N-character text to every payload. Prints the median wall time per round,
 * process CPU per job and Redis's CPU per job (`INFO cpu`) of each shape. Read against
 * bench/jobs.ts: the part of the wrapper's overhead that is BullMQ and Redis carrying more
 * bytes, not the wrapper's code. Times are paired: each round's against the bare shape's in
 * the same round (median of the rounds' ratios). Uses the machine Redis (or a redis-server it starts).
 */
import { parseArgs } from 'node:util'
import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { openTestRedis } from '../test/helpers/redis.js'

const { values } = parseArgs({
  options: { rounds: { type: 'string' }, note: { type: 'string' } },
})
const N = 2000
const ROUNDS = Number(values.rounds ?? 60)
const WARM_UP = 3
const note = values.note === undefined ? {} : { note: 'x'.repeat(Number(values.note)) }
const SHAPES: Record<string, (i: number) => unknown> = {
  bare: (i) => ({ i, tenantId: '3', ...note }),
  unsigned: (i) => ({ rowtenancy: { v: 1, tenant: '3' }, payload: { i, ...note } }),
  signed: (i) => ({
    rowtenancy: { v: 1, tenant: '3', sig: 'AbCdEfGhIjKlMnOpQrStUv' },
    payload: { i, ...note },
  }),
}

const redis = await openTestRedis()
const clients: Redis[] = []
const connection = () => {
  const r = new Redis({ host: redis.host, port: redis.port, maxRetriesPerRequest: null })
  clients.push(r)
  return r
}
const info = connection()
let count = 0
let done: () => void = () => {}
const queues = new Map<string, Queue>()
const workers: Worker[] = []
for (const shape of Object.keys(SHAPES)) {
  // names of one length: BullMQ writes the name into every key
  const name = `e_${shape.slice(0, 4)}`
  queues.set(shape, new Queue(name, { connection: connection(), prefix: redis.prefix }))
  const hit = async () => {
    if (++count === N) done()
  }
  workers.push(
    new Worker(name, hit, { connection: connection(), prefix: redis.prefix, concurrency: 8 }),
  )
}
const clean = { removeOnComplete: true, removeOnFail: true }

async function redisCpu(): Promise<number> {
  const text = await info.info('cpu')
  const seconds = (key: string) => Number(new RegExp(`${key}:([\\d.]+)`).exec(text)?.[1])
  return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6
}

/** Sends N jobs of `shape` (20 at a time) and waits until all ran. */
async function round(shape: string) {
  count = 0
  const all = new Promise<void>((resolve) => {
    done = resolve
  })
  const queue = queues.get(shape)!
  const data = SHAPES[shape]!
  const server0 = await redisCpu()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (next < N) await queue.add('j', data(next++), clean)
    }),
  )
  await all
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const server = (await redisCpu()) - server0
  return { ms, cpuPerJob: (cpu.user + cpu.system) / N, serverPerJob: server / N }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const shapes = Object.keys(SHAPES)
const results = new Map(shapes.map((s) => [s, [] as Awaited<ReturnType<typeof round>>[]]))
for (let r = 0; r < ROUNDS; r++) {
  const order = shapes.map((_, i) => shapes[(i + r) % shapes.length]!)
  for (const shape of order) {
    const result = await round(shape)
    if (r >= WARM_UP) results.get(shape)!.push(result)
  }
}
console.log(
  `BullMQ, the envelope's bytes alone: ${N} jobs x ${ROUNDS - WARM_UP} rounds per shape` +
    `${values.note === undefined ? '' : ` (payload with a ${values.note}-character note)`}; anchor: bare`,
)
const bare = results.get('bare')!
for (const shape of shapes) {
  const rs = results.get(shape)!
  // paired: each round's time against the bare queue's in the same round
  const overhead = median(rs.map((x, i) => x.ms / bare[i]!.ms)) - 1
  const cpu = median(rs.map((x, i) => x.cpuPerJob / bare[i]!.cpuPerJob))
  console.log(
    `  ${shape.padEnd(9)} ${String(JSON.stringify(SHAPES[shape]!(1000)).length).padStart(4)} bytes  ` +
      `${median(rs.map((x) => x.ms)).toFixed(0)} ms per round (median round against bare ${(overhead * 100).toFixed(1)}%)  ` +
      `process ${median(rs.map((x) => x.cpuPerJob)).toFixed(1)} µs/job (x${cpu.toFixed(3)})  ` +
      `Redis ${median(rs.map((x) => x.serverPerJob)).toFixed(1)} µs/job`,
  )
}
await Promise.all(workers.map((w) => w.close()))
for (const queue of queues.values()) {
  await queue.obliterate({ force: true }).catch(() => {})
  await queue.close()
}
for (const r of clients) r.disconnect()
await redis.stop()
