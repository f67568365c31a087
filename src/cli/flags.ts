import { CONFIG_KEYS } from '../config/index.js'

const FLAGS: ReadonlyMap<string, string> = new Map([
  ...CONFIG_KEYS.map((k): [string, string] => [k.key, k.flag]),
  ['all', '--all'],
  ['config', '--config'],
  ['tenantIds', '--tenant-id <id> (repeatable)'],
  ['yes', '--yes'],
  ['fromSchema', '--from-schema'],
  ['id', '--id'],
  ['models', '--model'],
  ['workDir', '--work-dir'],
  ['actor', '--actor'],
  ['reason', '--reason'],
  ['lockTimeoutMs', '--lock-timeout <ms>'],
])

/**
 * Rewrites a library message for the command line: each option named in
 * backquotes (`` `jobs` ``, `` `tenantIds` ``) becomes the flag that sets it
 * (`--jobs`, `--tenant-id <id> (repeatable)`); other text is left as it is.
 */
export function withFlags(message: string): string {
  return message.replace(/`([A-Za-z]+)`/g, (whole, name: string) => FLAGS.get(name) ?? whole)
}
