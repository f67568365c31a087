import { PassThrough } from 'node:stream'
import { createCliContext } from '../../src/cli/context.js'
import { createOutput } from '../../src/cli/output.js'
import { runCli } from '../../src/cli/program.js'

/**
 * Runs the CLI in-process and captures its output and exit code.
 *
 * @example
 * ```ts
 * const { code, stdout } = await cli(['tenants', 'list', '--json', '--database-url', url])
 * ```
 */
export async function cli(
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough()
  const err = new PassThrough()
  let stdout = ''
  let stderr = ''
  out.on('data', (d) => {
    stdout += d
  })
  err.on('data', (d) => {
    stderr += d
  })
  const previous = process.exitCode
  process.exitCode = undefined
  try {
    const code = await runCli(
      ['node', 'rowtenancy', ...args],
      createCliContext(createOutput(out, err)),
    )
    return { code, stdout, stderr }
  } finally {
    process.exitCode = previous
  }
}
