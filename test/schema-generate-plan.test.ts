import { describe, expect, it } from 'vitest'
import { cyclicEdges } from '../src/schema/generate/foreign-key-cycles.js'
import { fitName, planTenantSchema } from '../src/schema/generate/plan.js'
import { createTypeIfMissing, renderTenantSchema } from '../src/schema/generate/render.js'
import type { TableDef, TemplateSchema } from '../src/sql/catalog/model.js'

const table = (name: string, extra: Partial<TableDef> = {}): TableDef => ({
  name,
  partitionKey: undefined,
  partitionOf: undefined,
  columns: [{ name: 'id', type: 'integer', notNull: true }],
  primaryKey: {
    name: `${name}_pkey`,
    columns: ['id'],
    include: [],
    nullsNotDistinct: false,
    deferrable: false,
    initiallyDeferred: false,
  },
  uniques: [],
  checks: [],
  exclusions: [],
  foreignKeys: [],
  indexes: [],
  ...extra,
})

const template = (tables: TableDef[]): TemplateSchema => ({
  schema: 'tenant_1',
  tables,
  enums: [],
  domains: [],
  sequences: [],
  extensions: { btreeGin: false, btreeGist: false },
  notes: [],
})

describe('schema generate: planning without a database', () => {
  it('finds the edges on cycles: self-loops and strongly connected components, not chains', () => {
    const edges = [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
      { from: 'c', to: 'a' },
      { from: 'c', to: 'd' },
      { from: 'd', to: 'd' },
      { from: 'e', to: 'a' },
    ]
    expect([...cyclicEdges(edges)].sort()).toEqual([0, 1, 2, 4])
    expect(cyclicEdges([])).toEqual(new Set())
  })

  it('fits generated constraint names into 63 bytes without splitting a character', () => {
    const name = fitName(`${'ñ'.repeat(40)}_fkey`, '_match_full')
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63)
    expect(name.endsWith('_match_full')).toBe(true)
    expect(name).not.toContain('\uFFFD')
  })

  it('picks a dollar-quote tag that does not occur in the body (an enum label holding $rowtenancy$)', () => {
    const sql = createTypeIfMissing('s', 'e', `CREATE TYPE "s"."e" AS ENUM ('$rowtenancy$')`)
    expect(sql.startsWith('DO $rowtenancy1$ ')).toBe(true)
    expect(sql.endsWith(' $rowtenancy1$')).toBe(true)
  })

  it('refuses a template table that already has the tenant column', () => {
    const t = table('accounts', {
      columns: [
        { name: 'id', type: 'integer', notNull: true },
        { name: 'tenant_id', type: 'integer', notNull: false },
      ],
    })
    expect(() => planTenantSchema(template([t]))).toThrow(/already has a column "tenant_id"/)
  })

  it("refuses template tables that would collide with rowtenancy's own tenants tables", () => {
    expect(() => planTenantSchema(template([table('tenants')]))).toThrow(/collide/)
    expect(() =>
      planTenantSchema(template([table('tenants')]), { targetSchema: 'app' }),
    ).not.toThrow()
  })

  it('uses the configured tenant column and quotes hostile names', () => {
    const plan = planTenantSchema(template([table('a"b')]), {
      tenantColumn: 'org"id',
      targetSchema: 'x y',
      tenantIdType: 'text',
    })
    const create = renderTenantSchema(plan, { rls: false }).find((s) =>
      s.startsWith('CREATE TABLE'),
    )
    expect(create).toBe(
      'CREATE TABLE "x y"."a""b" ("org""id" text NOT NULL REFERENCES "public"."tenants" ("id"), ' +
        '"id" integer NOT NULL, CONSTRAINT "a""b_pkey" PRIMARY KEY ("org""id", "id"))',
    )
  })
})
