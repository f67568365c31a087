import { describe, expect, it } from 'vitest'
import { isSessionNeutral } from '../src/db/neutral-statement.js'

/**
 * The judge behind the tenant pool's skipped session reset: only statements that
 * provably leave the session alone are neutral. Every refusal below is either an
 * attack that really changes the session on PostgreSQL (test/tenant-pool-neutral
 * runs them) or a shape the judge cannot prove safe (refused: the reset follows).
 */
const NEUTRAL = [
  // Drizzle
  'select "id", "name" from "accounts" where ("accounts"."tenant_id" = $1 and "accounts"."id" = $2)',
  'insert into "accounts" ("tenant_id", "id", "name") values ($1, $2, $3) returning "id"',
  'update "accounts" set "name" = $1 where "accounts"."id" = $2',
  'delete from "notes" where "notes"."id" = $1',
  'select count(*) from "accounts"',
  // Knex
  'select "id", "name" from "accounts" where "tenant_id" = $1 and "id" = $2',
  'insert into "accounts" ("id", "name", "tenant_id") values ($1, $2, $3)',
  'select * from "notes"',
  // TypeORM
  'SELECT "Account"."id" AS "Account_id", "Account"."name" AS "Account_name" FROM "accounts" "Account" WHERE (("Account"."tenant_id" = $1) AND ("Account"."id" = $2)) LIMIT 1',
  'INSERT INTO "accounts"("tenant_id", "id", "name") VALUES ($1, $2, $3)',
  'SELECT COUNT(DISTINCT("Account"."tenant_id", "Account"."id")) AS "cnt" FROM "accounts" "Account"',
  // Prisma
  'SELECT "public"."accounts"."tenant_id", "public"."accounts"."name" FROM "public"."accounts" WHERE ("public"."accounts"."tenant_id" = $1 AND "public"."accounts"."id" = $2) LIMIT $3 OFFSET $4',
  'SELECT COUNT(*) AS "_count$_all" FROM (SELECT "public"."accounts"."id" FROM "public"."accounts" WHERE 1=1 OFFSET $1) AS "sub"',
  'INSERT INTO "public"."notes" ("tenant_id","id") VALUES ($1,$2) RETURNING "public"."notes"."id"',
  'SELECT "t"."id" FROM "public"."notes" AS "t" WHERE ("t"."tenant_id" IN ($1) AND "t"."account_id" IN ($2,$3))',
  // other plain shapes
  "select name from accounts where id = any($1) and name <> 'it''s (a) test'",
  'with x as (select id from accounts where id > $1), y as materialized (select 1) select * from x, y',
  'with moved as (delete from accounts where id = $1 returning *) insert into archive select * from moved',
  'with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select n from r',
  'select a.id from accounts a join notes n on (n.account_id = a.id) where exists (select 1 from notes) for update',
  'insert into s.accounts as a (id, name) values ($1, $2) on conflict do nothing',
  'update accounts set updated_at = current_timestamp, n = (select max(n) from notes) where id = $1',
  'select id::bigint, $1::text[] from accounts where name like $2 order by id desc limit 10 offset 20;',
  // transaction control
  'begin',
  'BEGIN;',
  'START TRANSACTION',
  'begin isolation level serializable, read only',
  'BEGIN TRANSACTION ISOLATION LEVEL serializable;',
  'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ',
  'commit',
  'ROLLBACK WORK',
  'savepoint sp1',
  'SAVEPOINT "trx 2"',
  'release savepoint sp1',
  'ROLLBACK TO SAVEPOINT typeorm_1',
]

const REFUSED: [string, string][] = [
  ['session set_config', "select set_config('rowtenancy.tenant_id', '2', false)"],
  ['set_config quoted', `select "set_config"('rowtenancy.tenant_id', '2', false)`],
  ['set_config qualified', "select pg_catalog.set_config('rowtenancy.tenant_id', '2', false)"],
  ['set_config qualified, spaced', "select pg_catalog . set_config ('a', 'b', false)"],
  ['set_config upper case', "SELECT SET_CONFIG('a', 'b', FALSE)"],
  ['set_config in WHERE', "select id from accounts where set_config('a', 'b', false) is not null"],
  ['set_config in a CTE', "with x as (select set_config('a', 'b', false)) select * from x"],
  ['set_config in a subquery', "select (select set_config('a', 'b', false))"],
  ['unicode-escaped name', `select U&"set!005fconfig" UESCAPE '!' ('a', 'b', false)`],
  ['any function', 'select lower(name) from accounts'],
  ['function in FROM', 'select u.ts_stat from lower($1) u'],
  ['CAST in FROM', 'select c.ts_stat from cast($1 as text) c'],
  ['COALESCE in FROM', 'select c.ts_stat from coalesce($1) c'],
  ['CURRENT_USER in FROM', 'select u.ts_stat from current_user u'],
  ['USER', 'select user'],
  ['ts_stat on an expression', "select ('select 1'::text).ts_stat"],
  [
    'ts_stat on a unicode-escaped literal',
    "select (U&'select set_config(!0027a!0027, !0027b!0027, false)::tsvector' UESCAPE '!').ts_stat",
  ],
  ['ts_stat on a parameter', 'select $1.ts_stat'],
  ['field of a subscript', 'select a[1].f from t'],
  ['SELECT INTO', 'select * into temp accounts from accounts'],
  ['SELECT INTO after an alias named insert', 'select name insert into temp t2 from accounts'],
  ['SELECT INTO after (expr) insert', 'select (name) insert into t2 from accounts'],
  [
    'SELECT INTO after a CTE, parentheses in a literal',
    "with x as (select ')') select 'a' insert into t2 from accounts",
  ],
  ['two statements', 'select 1; set role other'],
  ['two statements, first empty', '; select 1'],
  ['a semicolon in a literal', "select ';'"],
  ['line comment', 'select 1 -- hidden'],
  ['block comment', 'select /* ; */ 1'],
  ['dollar quoting', 'select $$ ; set role x $$'],
  ['dollar-quote tag', 'select $a$x$a$'],
  ['dollar after a parameter', 'select $1$$x$$'],
  ['backslash', "select E'\\''"],
  ['non-ASCII', 'select 1 as é'],
  ['form feed', 'select\f1'],
  ['unterminated literal', "select 'abc"],
  ['SET', "set rowtenancy.tenant_id = '2'"],
  ['SET LOCAL', 'set local search_path = pg_temp'],
  ['SET SESSION CHARACTERISTICS', 'set session characteristics as transaction read only'],
  ['SET ROLE', 'set role other'],
  ['RESET', 'reset all'],
  ['PREPARE', 'prepare rowtenancy_bind as select 1'],
  ['DEALLOCATE', 'deallocate all'],
  ['CREATE TEMP', 'create temp table accounts (id int)'],
  ['DO', "do 'begin perform 1; end'"],
  ['LISTEN', 'listen x'],
  ['DECLARE', 'declare c cursor with hold for select 1'],
  ['CALL', 'call p()'],
  ['COPY', 'copy accounts to stdout'],
  ['EXPLAIN ANALYZE', 'explain analyze select 1'],
  ['TABLE', 'table accounts'],
  ['VALUES', 'values (1)'],
  ['MERGE', 'merge into t using s on true when matched then delete'],
  ['COMMIT AND CHAIN', 'commit and chain'],
  ['PREPARE TRANSACTION', "prepare transaction 'x'"],
  ['BEGIN plus SET', 'begin; set role x'],
  ['nextval', "select nextval('s')"],
  ['aggregate, qualified', 'select pg_catalog.count(*) from accounts'],
  ['window', 'select count(*) over (partition by id) from accounts'],
  ['ON CONFLICT (cols)', 'insert into t (a) values (1) on conflict (a) do nothing'],
  ['a type with a modifier', 'select 1::numeric(10,2)'],
  ['WITH body that is not a statement', 'with x as (table accounts) select 1'],
  ['INSERT without INTO', 'insert t values (1)'],
  ['empty', '   '],
]

describe('isSessionNeutral', () => {
  it.each(NEUTRAL)('neutral: %s', (text) => {
    expect(isSessionNeutral(text)).toBe(true)
  })
  it.each(REFUSED)('refused (%s): %s', (_label, text) => {
    expect(isSessionNeutral(text)).toBe(false)
  })
  it('the verdict is the same from the cache', () => {
    for (const text of NEUTRAL) expect(isSessionNeutral(text)).toBe(true)
    for (const [, text] of REFUSED) expect(isSessionNeutral(text)).toBe(false)
  })
})
