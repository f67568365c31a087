// The copy that stands in for a graphile-worker job held for a suspended tenant.

/**
 * Adds the copy that stands in for a held job (a suspended tenant's, `wait`
 * policy): the same envelope in the payload and the job's own spec: named
 * queue, priority, attempts, flags (a worker's `forbiddenFlags` apply to the
 * copy as to the job) and job key. graphile-worker moves a key off a running
 * job onto the job added with it, so the copy holds the key the job held and
 * the tenant's next job with that key replaces it. A job whose key a newer job
 * took while it ran leaves no copy: the newer one runs. For a keyed job the
 * check and the add are one transaction holding the job's row, so a newer job
 * added meanwhile waits for it and then replaces the copy.
 *
 * @internal
 */
export async function addHeldCopy(
  helpers: any,
  schema: string,
  identifier: string,
  payload: unknown,
  delayMs: number,
): Promise<void> {
  const job = helpers.job
  const queueName: string | null = job.job_queue_id == null ? null : await helpers.getQueueName()
  const runAt = new Date(Date.now() + delayMs)
  const flags = job.flags ? Object.keys(job.flags) : null
  if (!job.key) {
    await helpers.addJob(identifier, payload, {
      runAt,
      maxAttempts: job.max_attempts,
      priority: job.priority,
      ...(queueName ? { queueName } : {}),
      ...(flags ? { flags } : {}),
    })
    return
  }
  await helpers.withPgClient(async (client: { query(text: string, values?: unknown[]): any }) => {
    await client.query('begin')
    try {
      const { rows } = await client.query(
        `select 1 from ${schema}._private_jobs where id = $1 and key = $2 for update`,
        [job.id, job.key],
      )
      if (rows.length > 0) {
        await client.query(
          `select from ${schema}.add_job(identifier => $1::text, payload => $2::json, ` +
            'queue_name => $3::text, run_at => $4::timestamptz, max_attempts => $5::int, ' +
            "job_key => $6::text, priority => $7::int, flags => $8::text[], job_key_mode => 'replace')",
          [
            identifier,
            JSON.stringify(payload),
            queueName,
            runAt.toISOString(),
            job.max_attempts,
            job.key,
            job.priority,
            flags,
          ],
        )
      }
      await client.query('commit')
    } catch (err) {
      await client.query('rollback').catch(() => {})
      throw err
    }
  })
}
