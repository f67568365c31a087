import type { Queryable } from '../../src/sql/queryable.js'
import { quoteIdent, quoteLiteral } from '../../src/sql/quote.js'
import { installTenantTables } from '../../src/tenants/install.js'

/**
 * One legacy tenant of the fixture.
 *
 * @example
 * ```ts
 * const t: LegacyTenant = { id: '1', schema: 'acme', name: 'Acme' }
 * ```
 */
export interface LegacyTenant {
  readonly id: string
  readonly schema: string
  readonly name: string
}

/**
 * Options of {@link buildLegacyFixture}.
 *
 * @example
 * ```ts
 * await buildLegacyFixture(pool, { rows: 30, extraTenants: 4 })
 * ```
 */
export interface LegacyFixtureOptions {
  /** Rows in the main tables of the first tenant (others get a few more each); 20 by default. */
  readonly rows?: number
  /** Plain tenants `tenant_<n>` added after the named ones. */
  readonly extraTenants?: number
  /** Include `drifty` (a tenant whose `book` has an extra `isbn` column); true by default. */
  readonly drift?: boolean
  /** Include the hostile schema `we"ird.schema ü`; true by default. */
  readonly hostile?: boolean
  /** Name a schema that does not exist in the legacy table (`ghost`, id 99); false by default. */
  readonly ghost?: boolean
  /** Target tables: `composite` (default), `remap`, or `none`. */
  readonly target?: 'composite' | 'remap' | 'none'
}

/** The hostile schema name: a quote, a dot, a space and a non-ASCII letter. */
export const HOSTILE_SCHEMA = 'we"ird.schema ü'

/** The tenant tables of the fixture, in a valid foreign-key order (cycle author <-> book). */
/** A hostile table name (quote, dot, space, non-ASCII), and a hostile column in it. */
export const HOSTILE_TABLE = 'odd.tab"le ü'
const HT = quoteIdent(HOSTILE_TABLE)
const HC = quoteIdent('we"ird col')

export const FIXTURE_TABLES = [
  'finance_account',
  'author',
  'book',
  'tag',
  'book_tag',
  'event',
  'film',
  HOSTILE_TABLE,
] as const

/**
 * DDL of one legacy tenant schema: an enum, a self-reference (finance_account.parent_id),
 * a cycle (author.favorite_book_id <-> book.author_id), an identity key with a
 * non-`id` name (author_id, GENERATED ALWAYS), serial keys, a generated column
 * (book.price_with_tax), a two-column key on a join table (book_tag), a
 * partitioned table (event), a FK into a shared public table (country).
 */
function tenantDdl(schema: string): string[] {
  const s = quoteIdent(schema)
  return [
    `create schema ${s}`,
    `create type ${s}.mood as enum ('happy', 'sad', 'meh')`,
    `create table ${s}.finance_account (id serial primary key, name varchar(50) not null unique,
       country_id int references public.country (id), parent_id int references ${s}.finance_account (id),
       mood ${s}.mood, created_at timestamptz not null default '2020-01-01T00:00:00Z')`,
    `create table ${s}.author (author_id bigint generated always as identity primary key, name text not null,
       favorite_book_id int)`,
    `create table ${s}.book (id serial primary key, author_id bigint not null references ${s}.author (author_id),
       title text not null, price numeric(10, 2), price_with_tax numeric generated always as (price * 1.2) stored)`,
    `alter table ${s}.author add constraint author_favorite_fk foreign key (favorite_book_id) references ${s}.book (id)`,
    `create table ${s}.tag (id serial primary key, label text not null)`,
    `create table ${s}.book_tag (book_id int not null references ${s}.book (id), tag_id int not null references ${s}.tag (id),
       primary key (book_id, tag_id))`,
    `create table ${s}.event (id bigint not null, happened_on date not null, payload jsonb,
       primary key (id, happened_on)) partition by range (happened_on)`,
    `create table ${s}.event_2024 partition of ${s}.event for values from ('2024-01-01') to ('2025-01-01')`,
    `create table ${s}.event_2025 partition of ${s}.event for values from ('2025-01-01') to ('2026-01-01')`,
    `create table ${s}.film (film_id serial primary key, title text not null, rating ${s}.mood)`,
    `create table ${s}.${HT} (id serial primary key, ${HC} text)`,
  ]
}

/** Deterministic rows for one tenant schema, built server side. */
function tenantData(schema: string, n: number, k: number): string[] {
  const s = quoteIdent(schema)
  const half = Math.max(2, Math.floor(n / 2))
  const tag = quoteLiteral(`t${k}`)
  return [
    `insert into ${s}.finance_account (name, country_id, parent_id, mood)
       select 'Acct ' || i || ' O''Brien ü ' || ${tag}, case when i % 3 = 0 then null else 1 + i % 2 end,
              case when i > 1 then i / 2 end, (array['happy', 'sad', 'meh'])[1 + i % 3]::${s}.mood
         from generate_series(1, ${n}) i`,
    `insert into ${s}.author (name) select 'Author "' || i || '" ' || ${tag} from generate_series(1, ${half}) i`,
    `insert into ${s}.book (author_id, title, price)
       select 1 + i % ${half}, 'Book ' || i || E'\\ttab ' || ${tag}, case when i % 4 = 0 then null else (i * 3.17)::numeric(10, 2) end
         from generate_series(1, ${n}) i`,
    `update ${s}.author set favorite_book_id = author_id where author_id % 2 = 0`,
    `insert into ${s}.tag (label) select 'tag ' || i from generate_series(1, 5) i`,
    `insert into ${s}.book_tag (book_id, tag_id)
       select i, t from generate_series(1, ${n}) i, lateral (values (1 + i % 5), (1 + (i + 2) % 5)) v(t)`,
    `insert into ${s}.event (id, happened_on, payload)
       select i, date '2024-06-01' + (i * 17 % 500), jsonb_build_object('i', i, 'note', 'x"y', 'k', ${tag})
         from generate_series(1, ${n}) i`,
    `insert into ${s}.film (title, rating) select 'Film ' || i, case when i % 2 = 0 then 'happy'::${s}.mood end
       from generate_series(1, ${half}) i`,
    `insert into ${s}.${HT} (${HC}) select 'it''s "odd" ' || i from generate_series(1, ${half}) i`,
  ]
}

/**
 * The shared target tables for the composite strategy, written by hand the way
 * `schema generate` makes them: `tenant_id` first, primary keys `(tenant_id, <pk>)`,
 * FKs `(tenant_id, x) -> (tenant_id, pk)` (the cycle's one deferrable), a
 * tenant-leading unique constraint, plus a user trigger that upper-cases
 * `finance_account.name` on insert (it must not fire during the copy).
 */
export function compositeTargetDdl(): string[] {
  return [
    `create type public.mood as enum ('happy', 'sad', 'meh')`,
    `create table public.finance_account (tenant_id bigint not null references public.tenants (id),
       id serial not null, name varchar(50) not null, country_id int references public.country (id),
       parent_id int, mood public.mood, created_at timestamptz not null default now(),
       primary key (tenant_id, id), unique (tenant_id, name),
       foreign key (tenant_id, parent_id) references public.finance_account (tenant_id, id))`,
    `create table public.author (tenant_id bigint not null references public.tenants (id),
       author_id bigint generated always as identity, name text not null, favorite_book_id int,
       primary key (tenant_id, author_id))`,
    `create table public.book (tenant_id bigint not null references public.tenants (id), id serial not null,
       author_id bigint not null, title text not null, price numeric(10, 2),
       price_with_tax numeric generated always as (price * 1.2) stored, primary key (tenant_id, id),
       foreign key (tenant_id, author_id) references public.author (tenant_id, author_id))`,
    `alter table public.author add constraint author_favorite_fk foreign key (tenant_id, favorite_book_id)
       references public.book (tenant_id, id) deferrable initially immediate`,
    `create table public.tag (tenant_id bigint not null references public.tenants (id), id serial not null,
       label text not null, primary key (tenant_id, id))`,
    `create table public.book_tag (tenant_id bigint not null references public.tenants (id), book_id int not null,
       tag_id int not null, primary key (tenant_id, book_id, tag_id),
       foreign key (tenant_id, book_id) references public.book (tenant_id, id),
       foreign key (tenant_id, tag_id) references public.tag (tenant_id, id))`,
    `create table public.event (tenant_id bigint not null references public.tenants (id), id bigint not null,
       happened_on date not null, payload jsonb, primary key (tenant_id, id, happened_on)) partition by range (happened_on)`,
    `create table public.event_2024 partition of public.event for values from ('2024-01-01') to ('2025-01-01')`,
    `create table public.event_2025 partition of public.event for values from ('2025-01-01') to ('2026-01-01')`,
    `create table public.film (tenant_id bigint not null references public.tenants (id), film_id serial not null,
       title text not null, rating public.mood, primary key (tenant_id, film_id))`,
    `create table public.${HT} (tenant_id bigint not null references public.tenants (id), id serial not null,
       ${HC} text, primary key (tenant_id, id))`,
    `create function public.shout() returns trigger language plpgsql as $$
       begin new.name := upper(new.name); return new; end $$`,
    `create trigger finance_account_shout before insert on public.finance_account
       for each row execute function public.shout()`,
  ]
}

/**
 * Target tables for the remap strategy: single-column keys from the shared
 * sequences, single-column foreign keys, `tenant_id` on every table.
 */
export function remapTargetDdl(): string[] {
  return [
    `create type public.mood as enum ('happy', 'sad', 'meh')`,
    `create table public.finance_account (id serial primary key, tenant_id bigint not null references public.tenants (id),
       name varchar(50) not null, country_id int references public.country (id),
       parent_id int references public.finance_account (id), mood public.mood,
       created_at timestamptz not null default now(), unique (tenant_id, name))`,
    `create table public.author (author_id bigint generated always as identity primary key,
       tenant_id bigint not null references public.tenants (id), name text not null, favorite_book_id int)`,
    `create table public.book (id serial primary key, tenant_id bigint not null references public.tenants (id),
       author_id bigint not null references public.author (author_id), title text not null, price numeric(10, 2),
       price_with_tax numeric generated always as (price * 1.2) stored)`,
    `alter table public.author add constraint author_favorite_fk foreign key (favorite_book_id) references public.book (id)`,
    `create table public.tag (id serial primary key, tenant_id bigint not null references public.tenants (id), label text not null)`,
    `create table public.book_tag (tenant_id bigint not null references public.tenants (id),
       book_id int not null references public.book (id), tag_id int not null references public.tag (id),
       primary key (book_id, tag_id))`,
    `create table public.event (tenant_id bigint not null references public.tenants (id), id bigint not null,
       happened_on date not null, payload jsonb, primary key (tenant_id, id, happened_on))`,
    `create table public.film (film_id serial primary key, tenant_id bigint not null references public.tenants (id),
       title text not null, rating public.mood)`,
    `create table public.${HT} (id serial primary key, tenant_id bigint not null references public.tenants (id), ${HC} text)`,
  ]
}

/**
 * Builds a django-tenants style legacy database: `public.customers_client(id,
 * schema_name, name, ...)`, `public.customers_domain(domain, tenant_id,
 * is_primary)`, a shared `public.country`, tenants `acme` (1), `globex` (2), the
 * hostile schema (3), `drifty` (4, blocking drift), optional `tenant_<n>` extras
 * and a `ghost` entry; then the `tenants` tables and (by default) the composite
 * target tables. Deterministic.
 *
 * @example
 * ```ts
 * const tenants = await buildLegacyFixture(db.pool, { rows: 20 })
 * tenants.map((t) => t.schema) // ['acme', 'globex', 'we"ird.schema ü', 'drifty']
 * ```
 */
export async function buildLegacyFixture(
  db: Queryable,
  options: LegacyFixtureOptions = {},
): Promise<LegacyTenant[]> {
  const rows = options.rows ?? 20
  const tenants: LegacyTenant[] = [
    { id: '1', schema: 'acme', name: 'Acme' },
    { id: '2', schema: 'globex', name: 'Globex' },
  ]
  if (options.hostile !== false)
    tenants.push({ id: '3', schema: HOSTILE_SCHEMA, name: 'Weird & Co' })
  if (options.drift !== false) tenants.push({ id: '4', schema: 'drifty', name: 'Drifty' })
  for (let i = 0; i < (options.extraTenants ?? 0); i++) {
    tenants.push({ id: String(10 + i), schema: `tenant_${10 + i}`, name: `Tenant ${10 + i}` })
  }
  await db.query(`create table public.country (id int primary key, code text not null)`)
  await db.query(`insert into public.country values (1, 'DE'), (2, 'FR')`)
  await db.query(`create table public.customers_client (id serial primary key, schema_name varchar(63) not null unique,
    name varchar(100) not null, paid_until date, on_trial boolean not null default false)`)
  await db.query(`create table public.customers_domain (id serial primary key, domain varchar(253) not null unique,
    tenant_id int not null references public.customers_client (id), is_primary boolean not null default false)`)
  for (const [k, t] of tenants.entries()) {
    await db.query(
      'insert into public.customers_client (id, schema_name, name) values ($1, $2, $3)',
      [t.id, t.schema, t.name],
    )
    for (const statement of tenantDdl(t.schema)) await db.query(statement)
    for (const statement of tenantData(t.schema, rows + k, k)) await db.query(statement)
  }
  await db.query(`insert into public.customers_domain (domain, tenant_id, is_primary) values
    ('acme.example.com', 1, true), ('www.acme.example.com', 1, false), ('globex.example.com', 2, true),
    ('localhost', 2, false)`)
  if (options.ghost) {
    await db.query(
      `insert into public.customers_client (id, schema_name, name) values (99, 'ghost', 'Ghost')`,
    )
  }
  if (options.drift !== false) await db.query('alter table drifty.book add column isbn text')
  await installTenantTables(db, { idType: 'bigint' })
  const target = options.target ?? 'composite'
  if (target !== 'none') {
    for (const statement of target === 'remap' ? remapTargetDdl() : compositeTargetDdl())
      await db.query(statement)
  }
  return tenants
}

/**
 * Per-table row count and checksum of every table in the given schemas (to show
 * the sources are never altered).
 *
 * @example
 * ```ts
 * const before = await schemaFingerprint(pool, ['acme'])
 * ```
 */
export async function schemaFingerprint(
  db: Queryable,
  schemas: readonly string[],
): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const { rows } = await db.query(
    `select n.nspname as schema, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = any($1::text[]) and c.relkind in ('r', 'p') order by 1, 2`,
    [schemas],
  )
  for (const r of rows) {
    const q = `${quoteIdent(r.schema)}.${quoteIdent(r.name)}`
    const res = await db.query(
      `select count(*)::text || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0)::text as f from ${q} t`,
    )
    out[`${r.schema}.${r.name}`] = res.rows[0].f
  }
  const ddl = await db.query(
    `select string_agg(c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod), ',' order by c.relname, a.attnum, n.nspname) as d
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = any($1::text[]) and a.attnum > 0 and not a.attisdropped`,
    [schemas],
  )
  out['#columns'] = ddl.rows[0].d ?? ''
  return out
}
