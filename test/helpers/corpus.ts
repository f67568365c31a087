import type { Queryable } from '../../src/sql/queryable.js'
import { quoteIdent } from '../../src/sql/quote.js'

/**
 * A realistic legacy schema, written in the style of the public sample databases:
 * DDL and data for one tenant schema (the quoted schema name is `s`; `n` varies
 * the data per tenant).
 *
 * @example
 * ```ts
 * await pool.query(STORE.ddl('"Acme"'))
 * await pool.query(STORE.fill('"Acme"', 1))
 * ```
 */
export interface CorpusSchema {
  readonly name: string
  /** Types created in the target before `schema generate` (it carries them too, and keeps a type already there). */
  readonly targetTypes?: (s: string) => string
  readonly ddl: (s: string) => string
  readonly fill: (s: string, n: number) => string
  /** The tenant tables (parents, not partitions). */
  readonly tables: readonly string[]
  /** `--id-strategy remap` into the generated target: per table, each renumbered column and the table whose mapping translates it. */
  readonly remapped: Readonly<Record<string, Readonly<Record<string, string>>>>
}

/**
 * Hostile tenant schema names: a quote, a dot, spaces and upper case; non-ASCII and
 * a dash; a reserved word; and a name of exactly 63 bytes (the limit).
 *
 * @example
 * ```ts
 * HOSTILE_NAMES[0] // 'Acme Corp "Q4".eu'
 * ```
 */
export const HOSTILE_NAMES = [
  'Acme Corp "Q4".eu',
  'ünïcödé-schéma',
  'select',
  `t63_${'ü'.repeat(29)}x`,
] as const

/**
 * (a) A store (pagila style): enum and domain, FK cycle, partitioned table, full-text kept by a
 * trigger, arrays, bytea; an `updated`-style trigger function, a SQL function and a
 * SECURITY DEFINER function whose bodies name the schema, a view.
 */
export const STORE: CorpusSchema = {
  remapped: {
    language: { language_id: 'language' },
    film: { film_id: 'film', language_id: 'language' },
    store: { store_id: 'store', manager_staff_id: 'staff' },
    staff: { staff_id: 'staff', store_id: 'store' },
    customer: { customer_id: 'customer', store_id: 'store' },
    payment: { payment_id: 'payment', customer_id: 'customer', staff_id: 'staff' },
    film_actor: { film_id: 'film' },
  },
  name: 'store',
  tables: ['language', 'film', 'store', 'staff', 'customer', 'payment', 'film_actor'],
  ddl: (s) => `
create type ${s}.mpaa_rating as enum ('G', 'PG', 'PG-13', 'R', 'NC-17');
create domain ${s}.year as integer check (value >= 1901 and value <= 2155);
create table ${s}.language (language_id serial primary key, name character(20) not null,
  last_update timestamptz not null default now());
create table ${s}.film (film_id serial primary key, title text not null, description text,
  release_year ${s}.year, language_id integer not null references ${s}.language,
  rating ${s}.mpaa_rating default 'G', special_features text[], ratings ${s}.mpaa_rating[],
  fulltext tsvector, cover bytea, rental_rate numeric(4, 2) not null default 4.99,
  last_update timestamptz not null default now());
create index film_fulltext_idx on ${s}.film using gist (fulltext);
create index film_title_idx on ${s}.film (title);
create trigger film_fulltext_trigger before insert or update on ${s}.film
  for each row execute function tsvector_update_trigger(fulltext, 'pg_catalog.english', title, description);
create table ${s}.store (store_id serial primary key, manager_staff_id integer, address text not null);
create table ${s}.staff (staff_id serial primary key, store_id integer not null references ${s}.store,
  name text not null, picture bytea, active boolean not null default true);
alter table ${s}.store add constraint store_manager_fk foreign key (manager_staff_id)
  references ${s}.staff deferrable initially deferred;
create table ${s}.customer (customer_id serial primary key, store_id integer not null references ${s}.store,
  first_name text not null, last_name text not null, email text, activebool boolean not null default true,
  create_date date not null default current_date, last_update timestamptz not null default now());
create table ${s}.payment (payment_id serial, customer_id integer not null references ${s}.customer,
  staff_id integer not null references ${s}.staff, amount numeric(5, 2) not null,
  payment_date timestamptz not null, primary key (payment_date, payment_id)) partition by range (payment_date);
create table ${s}.payment_p2024a partition of ${s}.payment for values from ('2024-01-01') to ('2024-07-01');
create table ${s}.payment_p2024b partition of ${s}.payment for values from ('2024-07-01') to ('2025-01-01');
create table ${s}.film_actor (film_id integer not null references ${s}.film, actor text not null,
  primary key (film_id, actor));
create function ${s}.touch_last_update() returns trigger language plpgsql as $$
  begin new.last_update := now(); return new; end $$;
create trigger customer_touch before update on ${s}.customer for each row execute function ${s}.touch_last_update();
create function ${s}.film_count(lang integer) returns bigint language sql stable as $$
  select count(*) from ${s}.film where language_id = lang $$;
create view ${s}.film_list as select f.film_id, f.title, l.name as language, f.rating
  from ${s}.film f join ${s}.language l using (language_id);
create function ${s}.staff_names() returns setof text language sql security definer as $$ select name from ${s}.staff $$;`,
  fill: (s, n) => `
insert into ${s}.language (name) select l from unnest(array['English', 'Italian', 'Japanese', 'Mandarin']) l;
insert into ${s}.film (title, description, release_year, language_id, rating, special_features, ratings, cover)
select 'Film ' || i || ' of ' || ${n}, case when i % 5 = 0 then null else 'A ' || (array['Epic', 'Touching', 'Boring'])[1 + i % 3] || ' drama #' || i end,
       1990 + i % 30, 1 + i % 4, (enum_range(null::${s}.mpaa_rating))[1 + i % 5],
       case when i % 3 = 0 then array['Trailers', 'Deleted Scenes'] when i % 3 = 1 then '{}'::text[] end,
       array[(enum_range(null::${s}.mpaa_rating))[1 + i % 5], 'R']::${s}.mpaa_rating[],
       case when i % 4 = 0 then null else decode(md5(i::text || '${n}'), 'hex') end
  from generate_series(1, ${20 + n * 3}) i;
insert into ${s}.store (address) select 'Street ' || i from generate_series(1, 3) i;
insert into ${s}.staff (store_id, name, picture) select 1 + i % 3, 'Staff ' || i, '\\x00ff'::bytea from generate_series(1, 5) i;
update ${s}.store set manager_staff_id = store_id;
insert into ${s}.customer (first_name, last_name, email, store_id)
select 'First' || i, 'Last ''' || i, case when i % 7 = 0 then null else 'c' || i || '@x.test' end, 1 + i % 3
  from generate_series(1, ${15 + n}) i;
insert into ${s}.payment (customer_id, staff_id, amount, payment_date)
select 1 + i % ${15 + n}, 1 + i % 5, (i % 1000) / 100.0, timestamptz '2024-01-01 00:00+00' + i * interval '7 hours'
  from generate_series(1, ${40 + n * 5}) i;
insert into ${s}.film_actor select f, a from generate_series(1, 10) f, unnest(array['PENELOPE', 'NICK', 'ED']) a;`,
}

/** (b) Orders (northwind style): text and composite keys, jsonb, numeric money, a key without a sequence. */
export const ORDERS: CorpusSchema = {
  remapped: {
    products: { product_id: 'products' },
    orders: { order_id: 'orders' },
    order_details: { order_id: 'orders', product_id: 'products' },
  },
  name: 'orders',
  tables: ['customers', 'products', 'orders', 'order_details'],
  ddl: (s) => `
create domain ${s}.money2 as numeric(12, 2) check (value >= 0);
create table ${s}.customers (customer_id character(5) primary key, company_name varchar(40) not null,
  country varchar(15), contact jsonb);
create table ${s}.products (product_id integer primary key, product_name varchar(40) not null,
  unit_price ${s}.money2 default 0, discontinued boolean not null, attributes jsonb not null default '{}');
create table ${s}.orders (order_id integer primary key, customer_id character(5) references ${s}.customers,
  order_date date, freight ${s}.money2, ship jsonb, total numeric(14, 2));
create table ${s}.order_details (order_id integer not null references ${s}.orders,
  product_id integer not null references ${s}.products, unit_price numeric(10, 2) not null,
  quantity smallint not null check (quantity > 0), discount real not null default 0,
  primary key (order_id, product_id));
create unique index products_name_uq on ${s}.products (lower(product_name));`,
  fill: (s, n) => `
insert into ${s}.customers select upper(substr(md5(i::text), 1, 5)), 'Company ' || i || ' "Ltd"',
  (array['Germany', 'Mexico', 'UK', null])[1 + i % 4], jsonb_build_object('name', 'Person ' || i, 'tags', jsonb_build_array(i, 'x'))
  from generate_series(1, ${10 + n}) i;
insert into ${s}.products select i, 'Product ' || i, round((i * 1.37)::numeric, 2), i % 9 = 0,
  jsonb_build_object('weight', i * 0.25, 'dims', jsonb_build_object('w', i, 'h', 2 * i))
  from generate_series(1, 25) i;
insert into ${s}.orders select 10000 + i, (select customer_id from ${s}.customers order by customer_id offset i % ${10 + n} limit 1),
  date '2023-01-01' + i, (i % 300) * 0.33, case when i % 6 = 0 then null else jsonb_build_object('via', i % 3) end, null
  from generate_series(1, ${30 + n * 2}) i;
insert into ${s}.order_details select 10000 + o, 1 + (o * 7 + p) % 25, 9.99 + p, 1 + (o + p) % 20, ((o + p) % 4) * 0.05
  from generate_series(1, ${30 + n * 2}) o, generate_series(1, 3) p;
update ${s}.orders o set total = (select sum(d.unit_price * d.quantity * (1 - d.discount)) from ${s}.order_details d where d.order_id = o.order_id);`,
}

/** (c) SaaS: uuid and identity keys, generated columns, a self-reference, composite and range types, arrays of each. */
export const SAAS: CorpusSchema = {
  remapped: {
    users: { id: 'users', manager_id: 'users' },
    projects: { id: 'projects', owner_id: 'users' },
    tasks: { id: 'tasks', project_id: 'projects', parent_id: 'tasks' },
  },
  name: 'saas',
  tables: ['organizations', 'users', 'projects', 'tasks'],
  targetTypes: (s) => `
create type ${s}.money_amount as (currency char(3), cents bigint);
create type ${s}.score_range as range (subtype = float8);`,
  ddl: (s) => `
create type ${s}.task_status as enum ('todo', 'doing', 'done');
create type ${s}.money_amount as (currency char(3), cents bigint);
create type ${s}.score_range as range (subtype = float8);
create table ${s}.organizations (id uuid primary key default gen_random_uuid(), name text not null unique,
  plan text not null default 'free', budget ${s}.money_amount);
create table ${s}.users (id bigint generated always as identity primary key,
  org_id uuid not null references ${s}.organizations, email text not null,
  email_lower text generated always as (lower(email)) stored,
  manager_id bigint references ${s}.users, roles text[] not null default '{member}');
create table ${s}.projects (id bigint generated by default as identity primary key,
  org_id uuid not null references ${s}.organizations, name text not null,
  settings jsonb not null default '{}', tags varchar(30)[], owner_id bigint references ${s}.users,
  unique (org_id, name));
create table ${s}.tasks (id integer generated by default as identity primary key,
  project_id bigint not null references ${s}.projects on delete cascade,
  parent_id integer references ${s}.tasks, title text not null, status ${s}.task_status not null default 'todo',
  history ${s}.task_status[], estimate ${s}.score_range, costs ${s}.money_amount[], active_during tstzrange,
  title_len integer generated always as (length(title)) stored);`,
  fill: (s, n) => `
insert into ${s}.organizations (id, name, budget)
select ('00000000-0000-4000-8000-' || lpad((i * 1000 + ${n})::text, 12, '0'))::uuid, 'Org ' || i, row('EUR', i * 100)::${s}.money_amount
  from generate_series(1, 4) i;
insert into ${s}.users (org_id, email, manager_id)
select ('00000000-0000-4000-8000-' || lpad((1000 * (1 + i % 4) + ${n})::text, 12, '0'))::uuid, 'User' || i || '@Example.COM',
       case when i > 3 then 1 + i % 3 end
  from generate_series(1, ${12 + n}) i;
insert into ${s}.projects (org_id, name, settings, tags, owner_id)
select ('00000000-0000-4000-8000-' || lpad((1000 * (1 + i % 4) + ${n})::text, 12, '0'))::uuid, 'Project ' || i,
       jsonb_build_object('color', 'c' || i, 'n', i), array['a' || i, 'b, "quoted"'], 1 + i % 5
  from generate_series(1, 8) i;
insert into ${s}.tasks (project_id, parent_id, title, status, history, estimate, costs, active_during)
select 1 + i % 8, case when i > 5 then 1 + i % 5 end, 'Task ' || i || repeat('!', i % 3),
       (enum_range(null::${s}.task_status))[1 + i % 3], array['todo', (enum_range(null::${s}.task_status))[1 + i % 3]]::${s}.task_status[],
       case when i % 4 = 0 then null else ${s}.score_range(i * 0.5, i * 1.5) end,
       array[row('USD', i)::${s}.money_amount, row('EUR', i * 2)::${s}.money_amount],
       tstzrange(timestamptz '2024-01-01 00:00+00' + i * interval '1 day', null)
  from generate_series(1, ${25 + n}) i;`,
}

/**
 * Creates one tenant schema of `corpus` named `schema`, filled with data varied by `n`.
 *
 * @example
 * ```ts
 * await createCorpusTenant(pool, STORE, 'Acme Corp "Q4".eu', 1)
 * ```
 */
export async function createCorpusTenant(
  db: Queryable,
  corpus: CorpusSchema,
  schema: string,
  n: number,
): Promise<void> {
  const s = quoteIdent(schema)
  await db.query(`create schema ${s}`)
  await db.query(corpus.ddl(s))
  await db.query(corpus.fill(s, n))
}

/**
 * A fingerprint of every row of a table, computed with no code of the migration:
 * `count` and the sum of a 64-bit hash of each row's text over the named columns.
 * `where` restricts the rows (the tenant's rows of a shared table).
 *
 * @example
 * ```ts
 * await tableFingerprint(pool, '"Acme".film', ['film_id', 'title'])
 * ```
 */
export async function tableFingerprint(
  db: Queryable,
  from: string,
  columns: readonly string[],
  where = 'true',
): Promise<string> {
  const row = columns.map((c) => `x.${quoteIdent(c)}`).join(', ')
  const { rows } = await db.query(
    `select count(*)::text || ':' || coalesce(sum(hashtextextended(row(${row})::text, 0)), 0)::text as f
       from ${from} x where ${where}`,
  )
  return rows[0].f as string
}

/**
 * The columns of a table, in order, read from `information_schema` (not from the
 * migration's introspection).
 *
 * @example
 * ```ts
 * await columnNames(pool, 'Acme', 'film') // ['film_id', 'title', ...]
 * ```
 */
export async function columnNames(db: Queryable, schema: string, table: string): Promise<string[]> {
  const { rows } = await db.query(
    `select column_name from information_schema.columns where table_schema = $1 and table_name = $2
      order by ordinal_position`,
    [schema, table],
  )
  return rows.map((r) => r.column_name as string)
}

/**
 * The tenant's rows of a target table, each renumbered column translated back to its
 * old value through `rowtenancy_id_map` (remap; written here, not with migration code).
 */
export function translated(
  table: string,
  tenant: number,
  columns: readonly string[],
  remapped: CorpusSchema['remapped'],
): string {
  const exprs = columns.map((c) => {
    const via = remapped[table]?.[c]
    if (!via) return `x.${quoteIdent(c)}`
    return `(select m.old_id from public.rowtenancy_id_map m where m.tenant_id = '${tenant}' and m.table_name = '${via}' and m.new_id = x.${quoteIdent(c)}) as ${quoteIdent(c)}`
  })
  return `(select x.tenant_id, ${exprs.join(', ')} from public.${quoteIdent(table)} x)`
}
