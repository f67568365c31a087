import { Logger, makeWorkerUtils, run } from 'graphile-worker'
import { tenantAddJob, tenantTaskList } from '../src/jobs/index.js'
import { jobScenarios } from './jobs-scenario.js'

jobScenarios('graphile-worker', async (fx) => {
  const logger = new Logger(() => () => {})
  const utils = await makeWorkerUtils({ connectionString: fx.db.url, logger })
  await utils.migrate()
  const jobs = fx.jobs()
  const addJob = tenantAddJob(utils, jobs)
  const runner = await run({
    connectionString: fx.db.url,
    concurrency: 8,
    pollInterval: 200,
    noHandleSignals: true,
    logger,
    taskList: tenantTaskList(jobs, fx.handlers),
  })
  return {
    async send(queue, payload, options = {}) {
      const job = await addJob(queue, payload, {
        maxAttempts: options.attempts ?? 1,
        ...(options.delayMs ? { runAt: new Date(Date.now() + options.delayMs) } : {}),
      })
      return String(job.id)
    },
    async promote(_queue, id) {
      await utils.rescheduleJobs([id], { runAt: new Date() })
    },
    async sendRaw(queue, data) {
      return String((await utils.addJob(queue, data, { maxAttempts: 1 })).id)
    },
    async outcome(_queue, id) {
      const { rows } = await fx.db.pool.query(
        'select attempts, max_attempts, last_error, locked_at from graphile_worker.jobs where id = $1',
        [id],
      )
      const job = rows[0]
      if (!job) return { state: 'completed', error: '' }
      if (job.attempts >= job.max_attempts && job.last_error && !job.locked_at) {
        return { state: 'failed', error: job.last_error }
      }
      return undefined
    },
    async stop() {
      await runner.stop()
      await utils.release()
    },
  }
})
