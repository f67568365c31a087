import { buildLayouts } from './build.js'
import { measureCrossTenantReport } from './cross-tenant-report.js'
import { probeBackendMemory } from './memory.js'
import { measureRequestPath, type RequestSettings } from './request-path.js'
import type { SizeResult } from './results.js'
import { measureSchemaChange } from './schema-change.js'

/**
 * Settings of {@link measureSize}.
 *
 * @example
 * ```ts
 * const s: SizeSettings = { scale: 0.05, seed: 1, repetitions: 3, requests: { pool: 10, concurrency: 20, ms: 3000, readShare: 0.8, repetitions: 3, seed: 1 } }
 * ```
 */
export interface SizeSettings {
  readonly scale: number
  readonly seed: number
  readonly repetitions: number
  readonly requests: RequestSettings
  readonly say?: (line: string) => void
}

/**
 * Builds both layouts with `tenants` tenants in a fresh database on the server
 * at `adminUrl`, measures everything in an order where no step disturbs the
 * next (footprint, backend memory, the cross-tenant report while both layouts
 * still hold exactly the same rows, the request path (whose writes add a few
 * rows), and the schema change last, since it adds columns), and drops the
 * database.
 *
 * @example
 * ```ts
 * const size = await measureSize(server.url, 100, settings)
 * size.schemaChange.schema.length // settings.repetitions
 * ```
 */
export async function measureSize(
  adminUrl: string,
  tenants: number,
  settings: SizeSettings,
): Promise<SizeResult> {
  const say = settings.say ?? (() => {})
  const built = await buildLayouts(adminUrl, {
    tenants,
    scale: settings.scale,
    seed: settings.seed,
    onProgress: (line) => say(`  ${tenants} tenants: ${line}`),
  })
  try {
    say(`  ${tenants} tenants: backend memory after touching every tenant`)
    const memory = {
      schema: await probeBackendMemory(built.runtimeUrl, built.tenants, 'schema'),
      row: await probeBackendMemory(built.runtimeUrl, built.tenants, 'row'),
    }
    say(`  ${tenants} tenants: cross-tenant report`)
    const report = await measureCrossTenantReport(
      built.ownerPool,
      built.tenants,
      settings.repetitions,
    )
    say(`  ${tenants} tenants: request path`)
    const requests = await measureRequestPath(
      built.runtimeUrl,
      built.ownerPool,
      built.tenants,
      settings.requests,
    )
    say(`  ${tenants} tenants: schema change`)
    const schemaChange = await measureSchemaChange(
      built.ownerPool,
      built.tenants,
      settings.repetitions,
    )
    return {
      tenants,
      rows: built.rows,
      build: built.build,
      schemaChange,
      report,
      requests,
      footprint: built.footprint,
      memory,
    }
  } finally {
    await built.drop()
  }
}
