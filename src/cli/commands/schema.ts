import { writeFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { assertWritable } from '../../lifecycle/files.js'
import { type EmitTarget, emitOrmCode, parseEmitTargets } from '../../schema/generate/emit.js'
import {
  type AppliedSchema,
  applyTenantSchema,
  type GeneratedSchema,
  generateTenantSchema,
} from '../../schema/generate/index.js'
import { addConfigOptions, type CliContext } from '../context.js'

interface GenerateFlags {
  fromSchema: string
  apply?: boolean
  out?: string
  json?: boolean
  rls: boolean
  emit?: string
  uuidV7Keys?: boolean
  installExtensions?: boolean
}

/**
 * `rowtenancy schema generate --from-schema <template> [--apply]`: reads one
 * legacy tenant's schema and prints (or, with `--apply`, creates in one
 * transaction) the shared tenant-aware tables.
 *
 * @example
 * ```sh
 * rowtenancy schema generate --from-schema tenant_1 > shared.sql
 * rowtenancy schema generate --from-schema tenant_1 --target-schema public --tenant-id-type bigint --apply
 * ```
 */
export function register(program: Command, ctx: CliContext): void {
  const schema = program.command('schema').description('tenant-aware table DDL')
  const generate = generateCommand(schema)
  generate.action(async (opts: GenerateFlags, cmd: Command) => {
    // Bad input is refused before anything connects.
    const emit = opts.emit === undefined ? [] : parseEmitTargets(opts.emit)
    if (opts.out) await assertWritable(opts.out, 'the SQL', 'nothing was generated or applied')
    const config = await ctx.config(cmd)
    const pool = await ctx.pool(config, { url: config.adminDatabaseUrl ?? config.databaseUrl })
    const options = {
      fromSchema: opts.fromSchema,
      targetSchema: config.targetSchema,
      tenantIdType: config.tenantIdType,
      tenantsSchema: config.tenantsSchema,
      tenantColumn: config.tenantColumn,
      rls: opts.rls,
      uuidV7Keys: opts.uuidV7Keys === true,
      installExtensions: opts.installExtensions === true,
    }
    const result: GeneratedSchema | AppliedSchema = opts.apply
      ? await applyTenantSchema(pool, options)
      : await generateTenantSchema(pool, options)
    if (opts.out) await writeFile(opts.out, sqlScript(result), 'utf8')
    if (opts.json) ctx.out.json(jsonResult(result, opts, emit))
    else printResult(ctx, result, opts, emit)
  })
}

/** `schema generate` and its options. */
function generateCommand(schema: Command): Command {
  const generate = schema
    .command('generate')
    .description(
      'generate the shared tenant-aware tables from a template tenant schema ' +
        '(prints SQL; --apply creates them in one transaction)',
    )
    .requiredOption('--from-schema <template>', 'the template: one legacy tenant schema')
    .option('--apply', 'create the tables (all or nothing; a no-op when they already match)')
    .option('--out <file>', 'write the SQL to a file instead of stdout')
    .option('--no-rls', 'leave out ENABLE/FORCE ROW LEVEL SECURITY and the isolation policies')
    .option(
      '--uuid-v7-keys',
      'give uuid key columns a version 7 UUID default (no shared sequence revealing other tenants inserts)',
    )
    .option('--json', 'print the result as JSON')
    .option(
      '--emit <orms>',
      'also print the ORM code of the tables: drizzle (schema module), prisma (models), or both comma-separated',
    )
    .option(
      '--install-extensions',
      'create btree_gin / btree_gist when an index needs one to lead with the tenant column',
    )
  return addConfigOptions(generate, [
    'databaseUrl',
    'adminDatabaseUrl',
    'targetSchema',
    'tenantIdType',
    'tenantsSchema',
    'tenantColumn',
  ])
}

function statusOf(result: GeneratedSchema | AppliedSchema) {
  return 'status' in result ? result.status : undefined
}

/** The `--json` output. */
function jsonResult(
  result: GeneratedSchema | AppliedSchema,
  opts: GenerateFlags,
  emit: readonly EmitTarget[],
) {
  return {
    templateSchema: result.plan.templateSchema,
    targetSchema: result.plan.targetSchema,
    tenantIdType: result.plan.tenantIdType,
    tables: result.plan.tables.map((t) => t.name),
    deferredForeignKeys: result.plan.deferredForeignKeys,
    applied: statusOf(result) ?? null,
    out: opts.out ?? null,
    notes: result.notes,
    statements: result.statements,
    emitted: Object.fromEntries(
      emit.map((orm) => [orm, emitOrmCode(result.plan, orm, { rls: opts.rls })]),
    ),
  }
}

/** The text output: notes, what was applied or written, the SQL, the ORM code. */
function printResult(
  ctx: CliContext,
  result: GeneratedSchema | AppliedSchema,
  opts: GenerateFlags,
  emit: readonly EmitTarget[],
): void {
  const status = statusOf(result)
  for (const note of result.notes) ctx.out.warn(`note: ${oneLine(note)}`)
  const tables = result.plan.tables.length
  const target = JSON.stringify(result.plan.targetSchema)
  if (status === 'created') {
    ctx.out.line(
      `created ${tables} tenant-aware tables in ${target} (${result.statements.length} statements)`,
    )
  } else if (status === 'up-to-date') {
    ctx.out.line(
      `the ${tables} tenant-aware tables in ${target} already match the template; nothing to do`,
    )
  }
  if (opts.out) {
    const wrote = `wrote ${result.statements.length} statements to ${opts.out}`
    // With --emit, stdout carries only the ORM code (redirect it to a file as it is).
    if (emit.length > 0) ctx.out.warn(wrote)
    else ctx.out.line(wrote)
  } else if (!status) {
    ctx.out.line(sqlScript(result).trimEnd())
  }
  for (const [i, orm] of emit.entries()) {
    if (i > 0 || !opts.out) ctx.out.line('')
    ctx.out.line(`// ---- ${orm} (rowtenancy schema generate --emit ${orm}) ----`)
    ctx.out.line(emitOrmCode(result.plan, orm, { rls: opts.rls }).trimEnd())
  }
}

/** A psql-ready script: notes as comments, the statements in one transaction. */
function sqlScript(result: GeneratedSchema): string {
  const { plan } = result
  const header = [
    oneLine(
      `-- rowtenancy schema generate: template ${JSON.stringify(plan.templateSchema)} -> ` +
        `${JSON.stringify(plan.targetSchema)}, ${plan.tenantColumn} ${plan.tenantIdType}`,
    ),
    '-- Run in one transaction (the first statement is SET LOCAL search_path).',
    ...result.notes.map((n) => `-- note: ${oneLine(n)}`),
  ]
  return `${[...header, 'BEGIN;', ...result.statements.map((s) => `${s};`), 'COMMIT;'].join('\n')}\n`
}

/** Comments end at a line break: names with newlines must not escape them. */
function oneLine(text: string): string {
  return text.replace(/[\r\n\u2028\u2029]+/g, ' ')
}
