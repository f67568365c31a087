import { execFileSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Tenancy } from '../../src/entries/index.js'
import {
  allObjectsExtension,
  tenantPrismaAdapter,
  tenantPrismaExtension,
} from '../../src/prisma/index.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const schema = join(root, 'test', 'fixtures', 'prisma', 'schema.prisma')
const client = join(root, 'test', 'fixtures', 'prisma', 'generated', 'client.ts')

/**
 * The Prisma client generated from `test/fixtures/prisma/schema.prisma`
 * (generated here when missing or older than the schema or the installed client). Generation needs no
 * engine binary: `PRISMA_SCHEMA_ENGINE_BINARY` points at `/bin/true` unless set,
 * so `prisma generate` does not try to download one. Imported by path, so the
 * type check of the tests does not depend on a generated file.
 */
export async function loadPrismaClient(): Promise<new (options: { adapter: unknown }) => any> {
  // Regenerated when missing, older than the schema, or older than the installed Prisma.
  const installed = join(root, 'node_modules', '@prisma', 'client', 'package.json')
  const since = Math.max(statSync(schema).mtimeMs, statSync(installed).mtimeMs)
  if (!existsSync(client) || statSync(client).mtimeMs < since) {
    execFileSync(join(root, 'node_modules', '.bin', 'prisma'), ['generate', '--schema', schema], {
      cwd: root,
      env: {
        ...process.env,
        PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? '/bin/true',
        PRISMA_HIDE_UPDATE_MESSAGE: '1',
      },
      stdio: 'pipe',
    })
  }
  const mod = (await import(pathToFileURL(client).href)) as { PrismaClient: any }
  return mod.PrismaClient
}

/**
 * A client of `PrismaClient` through {@link tenantPrismaAdapter} with
 * {@link tenantPrismaExtension} and {@link allObjectsExtension} on top, as the
 * README sets one up. Every client it builds (this one and the all-objects
 * ones) is pushed on `clients`, for the caller to disconnect.
 */
export function isolatedPrismaClient(
  PrismaClient: new (options: { adapter: unknown }) => any,
  tenancy: Tenancy,
  clients: any[],
): any {
  const prisma = new PrismaClient({ adapter: tenantPrismaAdapter(tenancy) })
    .$extends(tenantPrismaExtension())
    .$extends(
      allObjectsExtension(tenancy, (adapter) => {
        const c = new PrismaClient({ adapter })
        clients.push(c)
        return c
      }),
    )
  clients.push(prisma)
  return prisma
}
