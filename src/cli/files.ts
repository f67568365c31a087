import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { InvalidInputError } from '../errors/index.js'

/**
 * Throws unless `file` can be written (an existing file, or a new one in a
 * directory that exists and is writable). A command that writes a file after
 * changing a database checks it first, so a bad path changes nothing.
 *
 * @example
 * ```ts
 * await assertWritable(opts.certificate, 'the erasure certificate', 'nothing was erased')
 * ```
 */
export async function assertWritable(file: string, what: string, unchanged: string): Promise<void> {
  let problem: string | undefined
  try {
    const existing = await stat(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    if (existing?.isDirectory()) problem = 'it is a directory'
    else await access(existing ? file : dirname(file), constants.W_OK)
  } catch (err) {
    problem = (err as NodeJS.ErrnoException).code ?? String(err)
  }
  if (problem !== undefined) {
    throw new InvalidInputError(
      `Cannot write ${what} to ${file} (${problem}): ${unchanged}. ` +
        'Give a file in an existing, writable directory.',
    )
  }
}
