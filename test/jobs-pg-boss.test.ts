import PgBoss from 'pg-boss'
import { tenantPgBoss } from '../src/jobs/index.js'
import { jobScenarios } from './jobs-scenario.js'

jobScenarios('pg-boss', async (fx) => {
  const boss = new PgBoss({
    connectionString: fx.db.url,
    schema: 'pgboss',
    max: 6,
    schedule: false,
  })
  boss.on('error', () => {})
  await boss.start()
  const jobs = fx.jobs()
  const tenantBoss = tenantPgBoss(boss, jobs)
  for (const queue of ['probe', 'hold', 'global']) {
    await boss.createQueue(queue, { name: queue, retryLimit: 0 })
    for (let w = 0; w < 3; w++) {
      await tenantBoss.work(
        queue,
        { batchSize: 4, pollingIntervalSeconds: 0.5 },
        fx.handlers[queue]!,
      )
    }
  }
  return {
    async send(queue, payload, options = {}) {
      const id = await tenantBoss.send(queue, payload, {
        retryLimit: (options.attempts ?? 1) - 1,
        retryDelay: 0,
        ...(options.delayMs ? { startAfter: new Date(Date.now() + options.delayMs) } : {}),
      })
      return id!
    },
    async sendRaw(queue, data) {
      return (await boss.send(queue, data as object, { retryLimit: 0 }))!
    },
    async outcome(queue, id) {
      const job = await boss.getJobById(queue, id)
      if (job?.state === 'failed')
        return { state: 'failed', error: String((job.output as { message?: string })?.message) }
      if (job?.state === 'completed') return { state: 'completed', error: '' }
      return undefined
    },
    async stop() {
      await boss.stop({ graceful: false, wait: true })
    },
  }
})
