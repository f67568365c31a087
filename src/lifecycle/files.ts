import { constants } from 'node:fs'
import { access, lstat, readlink, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { describeValue } from '../errors/describe-value.js'
import { InvalidInputError } from '../errors/index.js'

/**
 * Throws unless `file` can be written (an existing file, or a new one in a
 * directory that exists and is writable). A command that writes a file after
 * reading or changing a database checks it first, so a bad path changes nothing.
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
    // a link to a file not there yet is written where it points
    const link = existing ? undefined : await lstat(file).catch(() => undefined)
    const target = link?.isSymbolicLink() ? resolve(dirname(file), await readlink(file)) : file
    if (existing?.isDirectory()) problem = 'it is a directory'
    else if (!existing && !(await stat(dirname(target)).catch(() => undefined))?.isDirectory())
      problem = `there is no directory ${dirname(target)}`
    else await access(existing ? file : dirname(target), constants.W_OK)
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

/**
 * Throws unless `file` is an existing, readable file: a regular one, or a pipe
 * or character device (`/dev/stdin`, `<(gunzip -c a.gz)`), read as it comes.
 * A directory is refused.
 *
 * @example
 * ```ts
 * await assertReadableFile(opts.in, 'the archive', 'nothing was imported')
 * ```
 */
export async function assertReadableFile(
  file: string,
  what: string,
  unchanged: string,
): Promise<void> {
  let problem: string | undefined
  try {
    const found = await stat(file)
    if (found.isDirectory()) problem = 'it is a directory'
    else if (!found.isFile() && !found.isFIFO() && !found.isCharacterDevice()) {
      problem = 'it is not a file, a pipe or a device'
    } else await access(file, constants.R_OK)
  } catch (err) {
    problem = fsProblem(err, 'no such file')
  }
  if (problem !== undefined) {
    throw new InvalidInputError(
      `Cannot read ${what} ${file} (${problem}): ${unchanged}. Give the path of an existing, readable file.`,
    )
  }
}

/**
 * Throws unless `dir` is an existing directory this process may write files in.
 *
 * @example
 * ```ts
 * await assertWritableDirectory(options.workDir, 'the move archive', 'nothing was moved')
 * ```
 */
export async function assertWritableDirectory(
  dir: string,
  what: string,
  unchanged: string,
): Promise<void> {
  let problem: string | undefined
  try {
    const found = await stat(dir)
    if (!found.isDirectory()) problem = 'it is not a directory'
    else await access(dir, constants.W_OK | constants.X_OK)
  } catch (err) {
    problem = fsProblem(err, 'no such directory')
  }
  if (problem !== undefined) {
    throw new InvalidInputError(
      `Cannot write ${what} in ${dir} (${problem}): ${unchanged}. Give an existing, writable directory.`,
    )
  }
}

/** Why a file system call failed, for a message: `missing` for ENOENT, else the error's code. */
function fsProblem(err: unknown, missing: string): string {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'ENOENT' ? missing : (code ?? String(err))
}

/**
 * Throws unless `value` is a file path (a non-empty string) or a stream of the
 * direction needed (`pipe` for reading, `write` for writing).
 *
 * @example
 * ```ts
 * checkStreamOption('importTenant', 'in', options.in, 'read')
 * ```
 */
export function checkStreamOption(
  where: string,
  option: string,
  value: unknown,
  direction: 'read' | 'write',
): void {
  if (typeof value === 'string' && value.length > 0) return
  const stream = value as { pipe?: unknown; write?: unknown } | null
  const ok =
    !!stream &&
    typeof stream === 'object' &&
    (direction === 'read' ? typeof stream.pipe === 'function' : typeof stream.write === 'function')
  if (!ok) {
    throw new InvalidInputError(
      `${where} needs \`${option}\`: a file path or a ${direction === 'read' ? 'readable' : 'writable'} stream, ` +
        `got ${describeValue(value)}.`,
    )
  }
}
