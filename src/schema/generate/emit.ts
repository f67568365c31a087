import { InvalidInputError } from '../../errors/index.js'
import { type EmitOptions, emitDrizzleSchema } from './emit-drizzle.js'
import { emitPrismaModels } from './emit-prisma.js'
import type { TenantSchemaPlan } from './model.js'

/**
 * The ORMs `schema generate --emit` writes code for.
 *
 * @example
 * ```ts
 * const orm: EmitTarget = 'drizzle'
 * ```
 */
export type EmitTarget = 'drizzle' | 'prisma'

const TARGETS: readonly EmitTarget[] = ['drizzle', 'prisma']

/**
 * Reads `--emit drizzle,prisma` (comma-separated, each once); anything else is
 * an InvalidInputError naming the choices.
 *
 * @example
 * ```ts
 * parseEmitTargets('drizzle,prisma') // ['drizzle', 'prisma']
 * ```
 */
export function parseEmitTargets(value: string): EmitTarget[] {
  const items = value.split(',').map((s) => s.trim().toLowerCase())
  const bad = items.filter((s) => !TARGETS.includes(s as EmitTarget))
  if (bad.length > 0 || items.length === 0) {
    throw new InvalidInputError(
      `--emit takes ${TARGETS.join(', ')} (comma-separated), got ${JSON.stringify(value)}: ` +
        'e.g. --emit drizzle or --emit drizzle,prisma.',
    )
  }
  return [...new Set(items as EmitTarget[])]
}

/**
 * The ORM code of a generated schema, per target: the Drizzle schema module
 * or the Prisma models.
 *
 * @example
 * ```ts
 * emitOrmCode(generated.plan, 'prisma') // 'model Accounts { ... }'
 * ```
 */
export function emitOrmCode(
  plan: TenantSchemaPlan,
  target: EmitTarget,
  options: EmitOptions = {},
): string {
  return target === 'drizzle' ? emitDrizzleSchema(plan, options) : emitPrismaModels(plan, options)
}
