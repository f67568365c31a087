import { assertTenantIdShape, type TenantId } from '../context/index.js'
import { InvalidInputError, InvalidTenantIdError } from '../errors/index.js'

/**
 * The SQL type of `tenants.id` and of every `tenant_id` column.
 */
export type TenantIdType = 'bigint' | 'integer' | 'uuid' | 'text'

/** Every supported {@link TenantIdType}. @example `TENANT_ID_TYPES.includes('uuid')` */
export const TENANT_ID_TYPES: readonly TenantIdType[] = Object.freeze([
  'bigint',
  'integer',
  'uuid',
  'text',
])

const INT8_MAX = 9223372036854775807n
const INT4_MAX = 2147483647n
/** An integer of at most 9 digits in canonical form: in range for both integer types, returned as is. */
const SHORT_INTEGER = /^(?:0|-?[1-9]\d{0,8})$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * Checks that `type` is a supported tenant id type.
 *
 * @example
 * ```ts
 * assertTenantIdType('bigint') // ok
 * assertTenantIdType('int8') // InvalidInputError
 * ```
 */
export function assertTenantIdType(type: unknown): asserts type is TenantIdType {
  if (!TENANT_ID_TYPES.includes(type as TenantIdType)) {
    throw new InvalidInputError(
      `Unknown tenant id type ${JSON.stringify(type)}: use one of ${TENANT_ID_TYPES.join(', ')}.`,
    )
  }
}

/**
 * Validates a tenant id for the configured type and returns its canonical text
 * form (`'007'` -> `'7'` for integer types, lower-case for uuid). Throws
 * `InvalidTenantIdError` for a value of the wrong shape, before any SQL runs.
 *
 * @example
 * ```ts
 * parseTenantId('bigint', '42') // '42'
 * parseTenantId('uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11') // 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'
 * parseTenantId('integer', '1; drop table x') // InvalidTenantIdError
 * ```
 */
export function parseTenantId(type: TenantIdType, raw: unknown): string {
  assertTenantIdShape(raw)
  const text = String(raw as TenantId)
  switch (type) {
    case 'bigint':
    case 'integer': {
      if (SHORT_INTEGER.test(text)) return text
      const max = type === 'bigint' ? INT8_MAX : INT4_MAX
      if (!/^-?\d{1,20}$/.test(text)) {
        throw new InvalidTenantIdError(raw, `an integer (tenant ids are ${type})`)
      }
      const n = BigInt(text)
      if (n > max || n < -max - 1n) {
        throw new InvalidTenantIdError(raw, `an integer within the range of ${type}`)
      }
      return n.toString()
    }
    case 'uuid':
      if (!UUID.test(text)) throw new InvalidTenantIdError(raw, 'a UUID (tenant ids are uuid)')
      return text.toLowerCase()
    case 'text':
      return text
    default:
      assertTenantIdType(type)
      return text
  }
}

/**
 * Like {@link parseTenantId} but returns `undefined` instead of throwing.
 *
 * @example
 * ```ts
 * tryParseTenantId('bigint', 'acme') // undefined
 * ```
 */
export function tryParseTenantId(type: TenantIdType, raw: unknown): string | undefined {
  try {
    return parseTenantId(type, raw)
  } catch {
    return undefined
  }
}
