import { InvalidInputError } from '../errors/index.js'
import { revokeAllButOwner } from '../sql/privileges.js'
import { inTransaction, type Queryable } from '../sql/queryable.js'
import { quoteIdent } from '../sql/quote.js'
import { RLS_SETTING } from './rls-policy.js'

/**
 * The transaction-local setting that carries the seal of the sealed binding:
 * an HMAC over the tenant id, the backend and the transaction's start time.
 *
 * @example
 * ```ts
 * `select current_setting('${SEAL_SETTING}', true)`
 * ```
 */
export const SEAL_SETTING = 'rowtenancy.seal'

/** Holds the seal key: no role but its owner may use it (not even USAGE). */
export const SEAL_SCHEMA = 'rowtenancy_seal'

/**
 * The function the sealed binding calls: `public.rowtenancy_seal_bind(tenant, mac)`.
 *
 * @example
 * ```ts
 * `select ${SEAL_BIND_FUNCTION}($1, $2)`
 * ```
 */
export const SEAL_BIND_FUNCTION = 'public.rowtenancy_seal_bind'

/**
 * The function sealed policies compare against: `public.rowtenancy_sealed_tenant()`.
 *
 * @example
 * ```ts
 * `tenant_id = nullif((select ${SEALED_TENANT_FUNCTION}()), '')::bigint`
 * ```
 */
export const SEALED_TENANT_FUNCTION = 'public.rowtenancy_sealed_tenant'

/** The shortest seal key accepted (characters). */
export const SEAL_KEY_MIN_LENGTH = 32

/**
 * Checks a seal key: a string of at least {@link SEAL_KEY_MIN_LENGTH} characters.
 *
 * @example
 * ```ts
 * assertSealKey(process.env.ROWTENANCY_SEAL_KEY)
 * ```
 */
export function assertSealKey(key: unknown, where = 'sealKey'): asserts key is string {
  if (typeof key !== 'string' || key.length < SEAL_KEY_MIN_LENGTH) {
    throw new InvalidInputError(
      `${where} must be a secret string of at least ${SEAL_KEY_MIN_LENGTH} characters ` +
        `(e.g. \`openssl rand -hex 32\`), the same for \`rowtenancy rls enable --sealed\` and the app.`,
    )
  }
}

/**
 * The SQL objects of the sealed binding, one statement per element (`$1` of the
 * key row is the key). Owned by the role that runs them (the tables' owner):
 *
 * - `rowtenancy_seal.key`: the key, in a schema no other role may even use;
 * - `rowtenancy_seal_bind(tenant, mac)`: SECURITY DEFINER; accepts the tenant only
 *   with `mac = hmac(tenant, key)` (computed by the app, which holds the key), then
 *   sets `rowtenancy.tenant_id` and the seal, both transaction-local;
 * - `rowtenancy_sealed_tenant()`: SECURITY DEFINER, STABLE; the tenant when the seal
 *   matches the tenant, this backend and this transaction's start time, else null.
 *   A value set any other way (set_config, SET, a copied seal, a seal from an
 *   earlier transaction) is not honoured.
 *
 * @example
 * ```ts
 * renderSealSetup('public') // ['create extension if not exists pgcrypto', ...]
 * ```
 */
export function renderSealSetup(pgcryptoSchema: string): string[] {
  const hmac = `${quoteIdent(pgcryptoSchema)}.hmac`
  const key = `${quoteIdent(SEAL_SCHEMA)}.key`
  const eq = 'OPERATOR(pg_catalog.=)'
  // Both functions are SECURITY DEFINER without a SET clause (its GUC save/restore
  // would cost more than the rest, per statement): every name in them is qualified,
  // operators and types included, so the caller's search_path cannot reach in.
  // plpgsql, so the key lookup's plan is cached for the session.
  const readKey = `select s.key into k from ${key} s where s.id ${eq} 1;`
  return [
    `create schema if not exists ${quoteIdent(SEAL_SCHEMA)}`,
    `revoke all on schema ${quoteIdent(SEAL_SCHEMA)} from public`,
    `create table if not exists ${key} (id int primary key default 1 check (id = 1), key bytea not null)`,
    `revoke all on ${key} from public`,
    `insert into ${key} (id, key) values (1, convert_to($1, 'UTF8')) on conflict (id) do update set key = excluded.key`,
    `create or replace function ${SEAL_BIND_FUNCTION}(tenant pg_catalog.text, mac pg_catalog.text)
       returns pg_catalog.text language plpgsql volatile security definer as $fn$
     declare k pg_catalog.bytea;
     begin
       ${readKey}
       if k is null or tenant is null or tenant ${eq} ''::pg_catalog.text or mac is null
          or mac OPERATOR(pg_catalog.<>) ${hex(hmac, "pg_catalog.convert_to(tenant, 'UTF8')", 'k')} then
         raise exception 'rowtenancy: tenant binding refused: the MAC does not match (wrong sealKey, or not rowtenancy)'
           using errcode = '42501';
       end if;
       perform pg_catalog.set_config('${RLS_SETTING}'::pg_catalog.text, tenant, true);
       perform pg_catalog.set_config('${SEAL_SETTING}'::pg_catalog.text, ${seal(hmac, 'tenant', 'k')}, true);
       return tenant;
     end $fn$`,
    `create or replace function ${SEALED_TENANT_FUNCTION}() returns pg_catalog.text
       language plpgsql stable security definer as $fn$
     declare
       k pg_catalog.bytea;
       t pg_catalog.text := pg_catalog.current_setting('${RLS_SETTING}'::pg_catalog.text, true);
     begin
       if t is null or t ${eq} ''::pg_catalog.text then return null; end if;
       ${readKey}
       if k is not null and pg_catalog.current_setting('${SEAL_SETTING}'::pg_catalog.text, true) ${eq} ${seal(hmac, 't', 'k')} then
         return t;
       end if;
       return null;
     end $fn$`,
    `revoke all on function ${SEAL_BIND_FUNCTION}(text, text) from public`,
    `grant execute on function ${SEAL_BIND_FUNCTION}(text, text) to public`,
    `grant execute on function ${SEALED_TENANT_FUNCTION}() to public`,
  ]
}

/**
 * The transaction's start time as text that no session setting changes (an
 * integer of microseconds; float and timestamp output depend on settings).
 */
const XACT_START =
  `(pg_catalog.date_part('epoch'::pg_catalog.text, pg_catalog.now()) OPERATOR(pg_catalog.*) 1000000)` +
  '::pg_catalog.int8::pg_catalog.text'

/** `encode(hmac(data, key, 'sha256'), 'hex')`, every name qualified. */
function hex(hmac: string, data: string, key: string): string {
  return `pg_catalog.encode(${hmac}(${data}, ${key}, 'sha256'::pg_catalog.text), 'hex'::pg_catalog.text)`
}

/** The seal of `tenant` in this backend and transaction: hmac(tenant:pid:start, key). */
function seal(hmac: string, tenant: string, key: string): string {
  const cat = (a: string, b: string) => `${a} OPERATOR(pg_catalog.||) ${b}`
  const sep = `':'::pg_catalog.text`
  const data = cat(
    cat(cat(cat(tenant, sep), 'pg_catalog.pg_backend_pid()::pg_catalog.text'), sep),
    XACT_START,
  )
  return hex(hmac, `pg_catalog.convert_to(${data}, 'UTF8'::pg_catalog.name)`, key)
}

/**
 * Installs (or re-keys) the sealed binding's SQL objects in one transaction:
 * pgcrypto (when missing), the key and the two functions (see
 * {@link renderSealSetup}); any grant on the key table to another role is
 * revoked. Run it as the tables' owner; idempotent.
 *
 * @example
 * ```ts
 * await installSeal(ownerPool, { key: process.env.ROWTENANCY_SEAL_KEY })
 * await enableRls(ownerPool, tables, { sealed: true })
 * ```
 */
export async function installSeal(db: Queryable, options: { key: string }): Promise<void> {
  assertSealKey(options.key)
  await inTransaction(db, async (tx) => {
    await tx.query('create extension if not exists pgcrypto')
    const { rows } = await tx.query(
      `select n.nspname as schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace
        where e.extname = 'pgcrypto'`,
    )
    const statements = renderSealSetup(rows[0].schema as string)
    for (const statement of statements) {
      await tx.query(statement, statement.startsWith('insert') ? [options.key] : undefined)
    }
    // Grants made by default privileges or by hand: nobody but the owner reads the key.
    await revokeAllButOwner(tx, `${SEAL_SCHEMA}.key`)
  })
}
