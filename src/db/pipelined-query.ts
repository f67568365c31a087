import { createRequire } from 'node:module'
import pg from 'pg'

/**
 * One SQL statement with its parameters.
 *
 * @example
 * ```ts
 * const s: Statement = { text: "select set_config('rowtenancy.tenant_id', $1, true)", values: ['7'] }
 * ```
 */
export interface Statement {
  readonly text: string
  readonly values?: readonly unknown[] | undefined
  /**
   * The name of a statement already prepared on this connection: only Bind and
   * Execute are sent (no Parse). The dialect uses it only with `prepareBind: true`
   * (see `prepared-bind.ts`): transaction poolers may not carry named statements
   * across transactions.
   * @internal
   */
  readonly prepared?: string | undefined
  /**
   * With `prepared`: send a Parse under that name first (the first use on a
   * connection), then Bind and Execute it.
   * @internal
   */
  readonly parse?: boolean | undefined
  /** The main statement only: pg's `rowMode` (`'array'`: rows as arrays, as ORMs ask). */
  readonly rowMode?: 'array' | undefined
  /** The main statement only: pg's `types` (custom type parsers). */
  readonly types?: unknown
  /**
   * Not a statement: a protocol-level Close of the named statement `close` (no
   * error when there is none). Its `text` is ignored.
   * @internal
   */
  readonly close?: string | undefined
}

/** The part of pg's wire connection the pipeline writes to. @internal */
interface WireConnection {
  readonly stream: { cork?: () => void; uncork?: () => void }
  parse(msg: { text: string; name?: string; types?: unknown[] }): void
  bind(msg: { portal?: string; statement?: string; values?: unknown[]; binary?: boolean }): void
  describe(msg: { type: 'P' | 'S'; name?: string }): void
  execute(msg: { portal?: string; rows?: number }): void
  close(msg: { type: 'S' | 'P'; name?: string }): void
  sync(): void
}

/** The members of `pg.Query` the pipeline builds on. @internal */
interface QueryInternals {
  text: string
  values: unknown[] | undefined
  types: unknown
  binary: boolean | undefined
  handleRowDescription(msg: unknown): void
  handleDataRow(msg: unknown): void
  handleCommandComplete(msg: unknown, connection: unknown): void
  handleEmptyQuery(connection: unknown): void
  handleError(err: Error, connection: unknown): void
  submit(connection: unknown): Error | null
}

type Callback = (err: Error | null, result?: pg.QueryResult) => void

const QueryBase = pg.Query as unknown as new (config: {
  text: string
  values: unknown[]
  queryMode: 'extended'
  callback: Callback
  rowMode: 'array' | undefined
  types: unknown
}) => QueryInternals

/** Errors raised by a statement sent before the main one: the main statement never ran. */
const failedBeforeMain = new WeakSet<object>()

/**
 * True when `err` came from a statement sent before the main statement of a
 * pipeline (a bind, a reset): PostgreSQL skipped everything after it up to the
 * Sync, so the main statement did not run and may be sent again.
 *
 * @internal
 * @example
 * ```ts
 * runPipelined(client, [bind], main).catch((err) => failedBeforeMainStatement(err))
 * ```
 */
export function failedBeforeMainStatement(err: unknown): boolean {
  return typeof err === 'object' && err !== null && failedBeforeMain.has(err)
}

const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as {
  prepareValue: (value: unknown) => unknown
}

/**
 * A `pg` query that writes several statements and ONE Sync in a single network
 * write, so they cost one round trip and run in one implicit transaction (or in
 * the explicit one a `begin` among them opens). Only the main statement's result
 * is kept; the statements before and after it are run for their effect. A
 * subclass of `pg.Query`, so it also works on clients in pg's pipeline mode.
 *
 * @internal
 * @example
 * ```ts
 * const bind = { text: "select set_config('rowtenancy.tenant_id', $1, true)", values: ['7'] }
 * const result = await runPipelined(client, [bind], { text: 'select * from accounts' })
 * ```
 */
class PipelinedQuery extends QueryBase {
  readonly #before: readonly Statement[]
  readonly #after: readonly Statement[]
  /** How many CommandCompletes come before the main statement's (Close sends none). */
  readonly #mainIndex: number
  #completed = 0

  constructor(
    before: readonly Statement[],
    main: Statement,
    after: readonly Statement[],
    callback: Callback,
  ) {
    super({
      text: main.text,
      values: [...(main.values ?? [])],
      queryMode: 'extended',
      callback,
      rowMode: main.rowMode,
      types: main.types,
    })
    this.#before = before
    this.#after = after
    this.#mainIndex = before.filter((s) => s.close === undefined).length
  }

  override submit(connection: unknown): Error | null {
    const con = connection as WireConnection
    const statements = this.#before.length + 1 + this.#after.length
    const main = this.#before.length
    const texts: string[] = new Array(statements)
    const names: (string | undefined)[] = new Array(statements)
    const parses: boolean[] = new Array(statements)
    const values: unknown[][] = new Array(statements)
    try {
      // Serialise every value first: a value that cannot be sent fails here,
      // before a single byte is on the wire.
      for (let i = 0; i < statements; i++) {
        const s = i < main ? this.#before[i]! : i === main ? undefined : this.#after[i - main - 1]!
        texts[i] = s ? s.text : this.text
        names[i] = s?.prepared
        parses[i] = !s?.prepared || s.parse === true
        const raw = s ? (s.values ?? []) : (this.values ?? [])
        const prepared = new Array(raw.length)
        for (let j = 0; j < raw.length; j++) prepared[j] = prepareValue(raw[j])
        values[i] = prepared
      }
    } catch (err) {
      return err as Error
    }
    con.stream.cork?.()
    try {
      for (let i = 0; i < statements; i++) {
        const isMain = i === main
        const close =
          i < main
            ? this.#before[i]!.close
            : i > main
              ? this.#after[i - main - 1]!.close
              : undefined
        if (close !== undefined) {
          con.close({ type: 'S', name: close })
          continue
        }
        const name = names[i]
        if (parses[i]) {
          con.parse({
            text: texts[i]!,
            name: name ?? '',
            types: isMain ? (this.types as unknown[]) : [],
          })
        }
        con.bind({
          portal: '',
          statement: name ?? '',
          values: values[i],
          binary: isMain && !!this.binary,
        })
        if (isMain) con.describe({ type: 'P', name: '' })
        con.execute({ portal: '', rows: 0 })
      }
      con.sync()
    } finally {
      con.stream.uncork?.()
    }
    return null
  }

  override handleDataRow(msg: unknown): void {
    if (this.#completed === this.#mainIndex) super.handleDataRow(msg)
  }

  override handleCommandComplete(msg: unknown, connection: unknown): void {
    if (this.#completed === this.#mainIndex) super.handleCommandComplete(msg, connection)
    this.#completed++
  }

  override handleEmptyQuery(connection: unknown): void {
    if (this.#completed === this.#mainIndex) super.handleEmptyQuery(connection)
    this.#completed++
  }

  override handleError(err: Error, connection: unknown): void {
    if (this.#completed < this.#mainIndex && typeof err === 'object' && err !== null) {
      failedBeforeMain.add(err)
    }
    super.handleError(err, connection)
  }
}

/**
 * Runs `before`, `main` and `after` on `client` in one round trip (one Sync) and
 * resolves with `main`'s result. An error in any of them rejects, and PostgreSQL
 * skips the rest up to the Sync.
 *
 * @internal
 * @example
 * ```ts
 * await runPipelined(client, [{ text: 'begin' }, bind], query, [{ text: 'commit' }])
 * ```
 */
export function runPipelined(
  client: pg.ClientBase,
  before: readonly Statement[],
  main: Statement,
  after: readonly Statement[] = [],
): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    submitPipelined(client, before, main, after, (err, result) => {
      if (err) reject(err)
      else resolve(result as pg.QueryResult)
    })
  })
}

/**
 * {@link runPipelined} with a callback instead of a promise (for callers that
 * wrap the outcome in a promise of their own).
 *
 * @internal
 */
export function submitPipelined(
  client: pg.ClientBase,
  before: readonly Statement[],
  main: Statement,
  after: readonly Statement[],
  callback: (err: Error | null, result?: pg.QueryResult) => void,
): void {
  client.query(new PipelinedQuery(before, main, after, callback) as unknown as pg.Submittable)
}
