import { InvalidInputError, MigrationError } from '../errors/index.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'
import type { TenantIdType } from '../tenants/id-types.js'
import { tryParseTenantId } from '../tenants/id-types.js'
import { normalizeDomain, normalizeSlug, slugify } from '../tenants/normalize.js'
import type { SourceOptions, SourceTenant } from './types.js'

/**
 * A `schema.table` name split into its parts (`table` alone means `public.table`).
 * The split is on the first dot; quote a dotted name as `"a.b".c` to keep it whole.
 *
 * @example
 * ```ts
 * splitQualified('public.customers_client') // { schema: 'public', name: 'customers_client' }
 * splitQualified('"we.ird".t') // { schema: 'we.ird', name: 't' }
 * ```
 */
export function splitQualified(text: string): { schema: string; name: string } {
  const parts: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cur += '"'
        i++
      } else if (ch === '"') quoted = false
      else cur += ch
    } else if (ch === '"') quoted = true
    else if (ch === '.' && parts.length === 0) {
      parts.push(cur)
      cur = ''
    } else cur += ch
  }
  parts.push(cur)
  if (quoted || parts.some((p) => p === '')) {
    throw new InvalidInputError(
      `Cannot read the table name ${JSON.stringify(text)}: write it as schema.table (quote a name with dots as "a.b").`,
    )
  }
  return parts.length === 1
    ? { schema: 'public', name: parts[0]! }
    : { schema: parts[0]!, name: parts[1]! }
}

async function columnsOf(db: Queryable, schema: string, table: string): Promise<string[]> {
  const { rows } = await db.query(
    `select a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid
       join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = $2 and a.attnum > 0 and not a.attisdropped`,
    [schema, table],
  )
  return rows.map((r) => r.attname as string)
}

async function findLegacyTable(
  db: Queryable,
  column: string,
): Promise<{ schema: string; name: string }> {
  const { rows } = await db.query(
    `select n.nspname as schema, c.relname as name from pg_attribute a
       join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where a.attname = $1 and c.relkind in ('r', 'p', 'v') and not a.attisdropped
        and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
        and c.relname <> all($2::text[])
        -- an extension's own relations (Citus' public.citus_schemas view) are never the app's
        and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
                          and d.objid = c.oid and d.deptype = 'e')
      order by (n.nspname = 'public') desc, 1, 2`,
    [
      column,
      [
        'rowtenancy_migration',
        'rowtenancy_id_map',
        'rowtenancy_serving',
        'rowtenancy_changelog',
        'rowtenancy_deferred_index',
        'tenants',
        'tenant_domains',
      ],
    ],
  )
  const inPublic = rows.filter((r) => r.schema === 'public')
  const pick = inPublic.length > 0 ? inPublic : rows
  if (pick.length === 1) return pick[0]
  if (pick.length === 0) {
    throw new MigrationError(
      `Found no legacy tenants table (no table has a ${JSON.stringify(column)} column). ` +
        'Set `legacyTenantsTable` to schema.table (and `legacySchemaColumn`), or `schemaPattern` to "tenant_{id}".',
    )
  }
  throw new MigrationError(
    `Several tables could be the legacy tenants table: ${pick.map((r) => `${r.schema}.${r.name}`).join(', ')}. ` +
      'Name one with `legacyTenantsTable`.',
  )
}

async function findDomainsTable(
  db: Queryable,
  tenants: { schema: string; name: string },
): Promise<{ schema: string; name: string; tenantColumn: string } | undefined> {
  const { rows } = await db.query(
    `select n.nspname as schema, c.relname as name, a.attname as tenant_column
       from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = k.conrelid and a.attnum = k.conkey[1]
      where k.contype = 'f' and cardinality(k.conkey) = 1
        -- the referenced table looked up apart: fewer joins to plan on a new backend
        and k.confrelid = (select rc.oid from pg_class rc join pg_namespace rn on rn.oid = rc.relnamespace
                            where rn.nspname = $1 and rc.relname = $2)
        and exists (select 1 from pg_attribute d where d.attrelid = c.oid and d.attname = 'domain' and not d.attisdropped)
      order by 1, 2`,
    [tenants.schema, tenants.name],
  )
  return rows[0]
    ? { schema: rows[0].schema, name: rows[0].name, tenantColumn: rows[0].tenant_column }
    : undefined
}

/**
 * Lists the legacy tenants: from a legacy tenants table (django-tenants style
 * `schema_name`, found automatically when there is exactly one such table) or from
 * schemas matching a pattern like `tenant_{id}`. Each keeps its legacy id; slugs
 * are normalised from a `slug` column or the schema name; domains come from the
 * legacy domains table. The `public` schema is never a tenant schema.
 *
 * @example
 * ```ts
 * const tenants = await discoverTenants(pool, { legacyTenantsTable: 'public.customers_client' }, 'bigint')
 * tenants[0] // { id: '1', schema: 'acme', slug: 'acme', name: 'Acme', domains: ['acme.example.com'] }
 * ```
 */
export async function discoverTenants(
  db: Queryable,
  options: SourceOptions,
  idType: TenantIdType,
): Promise<{ tenants: SourceTenant[]; warnings: string[] }> {
  const warnings: string[] = []
  if (options.schemaPattern !== undefined && options.legacyTenantsTable === undefined) {
    return { tenants: await fromPattern(db, options.schemaPattern, idType), warnings }
  }
  const schemaCol = options.legacySchemaColumn ?? 'schema_name'
  const idCol = options.legacyIdColumn ?? 'id'
  const table = options.legacyTenantsTable
    ? splitQualified(options.legacyTenantsTable)
    : await findLegacyTable(db, schemaCol)
  const cols = await columnsOf(db, table.schema, table.name)
  if (cols.length === 0) {
    throw new MigrationError(
      `The legacy tenants table ${table.schema}.${table.name} does not exist. Check \`legacyTenantsTable\`.`,
    )
  }
  for (const c of [schemaCol, idCol]) {
    if (!cols.includes(c)) {
      throw new MigrationError(
        `The legacy tenants table ${table.schema}.${table.name} has no column ${JSON.stringify(c)}. ` +
          'Name the right ones with `legacySchemaColumn` / `legacyIdColumn`.',
      )
    }
  }
  const q = (c: string) => quoteQualified(undefined, c)
  const extra = [cols.includes('slug') ? `${q('slug')}::text as slug` : 'null::text as slug']
  extra.push(cols.includes('name') ? `${q('name')}::text as name` : 'null::text as name')
  const { rows } = await db.query(
    `select ${q(idCol)}::text as id, ${q(schemaCol)}::text as schema, ${extra.join(', ')}
       from ${quoteQualified(table.schema, table.name)} as t order by t.${q(idCol)}`,
  )
  const domains = await legacyDomains(db, options, table, warnings)
  const tenants: SourceTenant[] = []
  const seenSchemas = new Set<string>()
  for (const r of rows) {
    if (r.schema === null || r.schema === 'public') continue
    if (seenSchemas.has(r.schema)) {
      throw new MigrationError(
        `Two legacy tenants name the schema ${JSON.stringify(r.schema)}; fix the legacy table.`,
      )
    }
    seenSchemas.add(r.schema)
    const id = tryParseTenantId(idType, r.id)
    if (id === undefined) {
      throw new MigrationError(
        `Legacy tenant id ${JSON.stringify(r.id)} (schema ${JSON.stringify(r.schema)}) does not fit the tenant id type ${idType}. ` +
          'Set tenantIdType to match the legacy ids.',
      )
    }
    const d = domains.get(r.id) ?? { all: [] }
    tenants.push({
      id,
      schema: r.schema,
      slug: pickSlug(r.slug, r.schema, id),
      name: (r.name ?? r.schema).slice(0, 200) || r.schema,
      domains: d.all,
      ...(d.primary ? { primaryDomain: d.primary } : {}),
    })
  }
  return { tenants, warnings }
}

async function legacyDomains(
  db: Queryable,
  options: SourceOptions,
  tenants: { schema: string; name: string },
  warnings: string[],
): Promise<Map<string, { all: string[]; primary?: string }>> {
  const out = new Map<string, { all: string[]; primary?: string }>()
  let table: { schema: string; name: string; tenantColumn: string } | undefined
  if (options.legacyDomainsTable) {
    const t = splitQualified(options.legacyDomainsTable)
    const cols = await columnsOf(db, t.schema, t.name)
    if (!cols.includes('domain') || !cols.includes('tenant_id')) {
      throw new MigrationError(
        `The legacy domains table ${t.schema}.${t.name} is missing or has no "domain" / "tenant_id" columns.`,
      )
    }
    table = { ...t, tenantColumn: 'tenant_id' }
  } else {
    table = await findDomainsTable(db, tenants)
  }
  if (!table) return out
  const cols = await columnsOf(db, table.schema, table.name)
  const primary = cols.includes('is_primary') ? '"is_primary"' : 'false'
  const { rows } = await db.query(
    `select ${quoteQualified(undefined, table.tenantColumn)}::text as tenant, "domain"::text as domain,
            coalesce(${primary}, false) as is_primary
       from ${quoteQualified(table.schema, table.name)} order by 1, 2`,
  )
  for (const r of rows) {
    let domain: string
    try {
      domain = normalizeDomain(r.domain)
    } catch {
      warnings.push(
        `Skipped the legacy domain ${JSON.stringify(r.domain)} of tenant ${r.tenant}: not a valid host name.`,
      )
      continue
    }
    const entry = out.get(r.tenant) ?? { all: [] }
    entry.all.push(domain)
    if (r.is_primary && entry.primary === undefined) entry.primary = domain
    out.set(r.tenant, entry)
  }
  return out
}

function pickSlug(raw: string | null, schema: string, id: string): string {
  if (raw) {
    try {
      return normalizeSlug(raw)
    } catch {
      // fall through to the schema name
    }
  }
  return slugify(schema) || `tenant-${slugify(id) || 'x'}`
}

async function fromPattern(
  db: Queryable,
  pattern: string,
  idType: TenantIdType,
): Promise<SourceTenant[]> {
  const at = pattern.indexOf('{id}')
  if (at < 0 || pattern.indexOf('{id}', at + 1) >= 0) {
    throw new InvalidInputError(
      `The schema pattern ${JSON.stringify(pattern)} must contain {id} exactly once, e.g. "tenant_{id}".`,
    )
  }
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const re = new RegExp(`^${esc(pattern.slice(0, at))}(.+)${esc(pattern.slice(at + 4))}$`, 'u')
  const { rows } = await db.query(
    `select nspname from pg_namespace where nspname <> 'public' and nspname <> 'information_schema'
        and nspname not like 'pg\\_%' order by 1`,
  )
  const out: SourceTenant[] = []
  for (const r of rows) {
    const m = re.exec(r.nspname)
    if (!m) continue
    const id = tryParseTenantId(idType, m[1])
    if (id === undefined) continue
    out.push({
      id,
      schema: r.nspname,
      slug: pickSlug(null, r.nspname, id),
      name: r.nspname,
      domains: [],
    })
  }
  return out
}
