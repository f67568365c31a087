import { randomBytes } from 'node:crypto'
import { access, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type pg from 'pg'
import { explainUnreachable } from '../db/connect.js'
import { LifecycleError } from '../errors/index.js'
import { lockTimeoutOf } from '../sql/lock-wait.js'
import { checkOptionTypes } from '../sql/option-types.js'
import type { Queryable } from '../sql/queryable.js'
import { quoteQualified } from '../sql/quote.js'
import { parseTenantId } from '../tenants/id-types.js'
import {
  assertDatabaseName,
  DEFAULT_DATABASE,
  installPlacements,
  PlacementMap,
  setPlacement,
} from '../tenants/placements.js'
import { archiveFileSigned, archiveKeyBytes } from './archive-format.js'
import { bindTenant, pinTextSettings, type TableChecksum, tenantChecksums } from './checksums.js'
import {
  auditLifecycle,
  auditText,
  defaultActor,
  type ErasureCertificate,
  eraseInTransaction,
} from './erase.js'
import type { LifecycleListener } from './events.js'
import { exportTenant } from './export.js'
import { assertWritableDirectory } from './files.js'
import { checkCompatible, importTenant } from './import.js'
import { type LayoutOptions, resolveLayout } from './layout.js'
import { checkLockTimeout, explainLockWaits, limitLockWaits, tagLockWait } from './lock-limit.js'
import { readArchiveManifest } from './manifest.js'
import { checksumsAt, destinationRows, sameAsManifest } from './move-copy.js'
import {
  deleteMove,
  ensureMoveLedger,
  MOVE_LEDGER,
  type MoveEntry,
  type MoveState,
  readMove,
  recordCopyRemoved,
  recordExport,
  recordImport,
  recordStale,
  setMoveState,
  writeMove,
} from './move-ledger.js'
import { type TenantLayout, tenantTables } from './tables.js'
import { lockTenant, readTenant } from './tenant-row.js'

/**
 * Options of {@link moveTenant}.
 */
export interface MoveOptions extends LayoutOptions {
  /** The database the tenant's rows are in now. */
  readonly db: pg.Pool
  /** Its name in the placement map; `default` by default. */
  readonly sourceName?: string | undefined
  /** The catalog database (`tenants`, `tenant_placements`, the move ledger); `db` by default. */
  readonly catalog?: pg.Pool | undefined
  /** The catalog's own name in the placement map; `default` by default. */
  readonly catalogName?: string | undefined
  /** The destination database and its name in the placement map. */
  readonly to: pg.Pool
  readonly toName: string
  readonly tenantId: string | number | bigint
  /** Where the archive waits between steps (kept until the move is done). */
  readonly workDir: string
  /** Signs the move's archive and checks it at every later step (see `ExportOptions.archiveKey`). */
  readonly archiveKey?: string | Uint8Array | undefined
  readonly actor?: string | undefined
  /**
   * The longest any statement of the move, in any of its databases, waits for a
   * lock another session holds, ms (1 to 600000). Then the move stops where it
   * is, as a crash there would (rerun it to continue), and a
   * `DatabaseUnavailableError` names the holders. No limit by default.
   */
  readonly lockTimeoutMs?: number | undefined
  readonly onEvent?: LifecycleListener | undefined
  /** Called after each step is recorded in the ledger (the crash tests stop the process here). */
  readonly onStep?: ((state: MoveState) => void | Promise<void>) | undefined
}

/**
 * What {@link moveTenant} did.
 */
export interface MoveResult {
  readonly tenantId: string
  readonly from: string
  readonly to: string
  /** Whether an unfinished move was picked up. */
  readonly resumed: boolean
  /** The tenant's counts and checksums, equal at the destination and in the archive. */
  readonly tables: readonly TableChecksum[]
  /** The erasure at the source (undefined when this run found it done already). */
  readonly certificate: ErasureCertificate | undefined
}

interface Ctx {
  readonly o: MoveOptions
  readonly tenantId: string
  readonly catalog: pg.Pool
  readonly cLayout: TenantLayout
  readonly sLayout: TenantLayout
  readonly dLayout: TenantLayout
  readonly sourceIsCatalog: boolean
  readonly destIsCatalog: boolean
  readonly ledger: string
  /** The lock wait limit of every transaction, ms (`lockTimeoutMs`). */
  readonly lockMs: number | undefined
}

/** Runs `fn` in one transaction on `pool`, its lock waits limited to `lockMs`. */
async function tx<T>(
  pool: pg.Pool,
  lockMs: number | undefined,
  fn: (c: pg.PoolClient) => Promise<T>,
  readOnly = false,
): Promise<T> {
  const c = await explainUnreachable(pool, () => pool.connect())
  let failed = false
  try {
    await c.query(readOnly ? 'begin isolation level repeatable read read only' : 'begin')
    await limitLockWaits(c, lockMs)
    await pinTextSettings(c)
    const r = await fn(c)
    await c.query('commit')
    return r
  } catch (err) {
    failed = true
    await c.query('rollback').catch(() => {})
    tagLockWait(err, pool)
    throw err
  } finally {
    c.release(failed ? true : undefined)
  }
}

async function setStatus(db: Queryable, layout: TenantLayout, id: string, status: string) {
  await db.query(
    `update ${quoteQualified(layout.tenantsSchema, 'tenants')} set status = $2 where id = $1::${layout.idType}`,
    [id, status],
  )
}

/**
 * `rowtenancy tenants move`: moves one tenant's rows to another database:
 * suspend (in the catalog) -> export -> import at the destination -> verify
 * (counts and checksums equal to the archive) -> cut-over: the source is checked
 * unchanged since the export, the placement map switched, the status restored
 * and the source rows erased, in one catalog transaction when the source is the
 * catalog. Every step is recorded in a move ledger in the catalog, so a run that
 * crashed at any point is finished by running it again; the source is never
 * erased before the destination verified. While it runs the tenant is
 * `suspended`, so the middleware answers with the suspended-tenant error.
 *
 * @example
 * ```ts
 * await moveTenant({ db: pool, to: euPool, toName: 'eu-2', tenantId: '7', workDir: '/var/tmp' })
 * ```
 */
export async function moveTenant(o: MoveOptions): Promise<MoveResult> {
  checkOptionTypes(
    'moveTenant',
    o,
    { db: 'pool', to: 'pool', catalog: 'pool', workDir: 'string' },
    ['db', 'to', 'workDir'],
  )
  const catalog = o.catalog ?? o.db
  const sourceName = o.sourceName ?? DEFAULT_DATABASE
  const catalogName = o.catalogName ?? DEFAULT_DATABASE
  assertDatabaseName(o.toName)
  assertDatabaseName(sourceName)
  if (o.archiveKey !== undefined) archiveKeyBytes(o.archiveKey)
  auditText(o.actor, 'actor', defaultActor())
  const lockMs = checkLockTimeout('moveTenant', o.lockTimeoutMs)
  await assertWritableDirectory(
    o.workDir,
    'the archive (the work directory, `workDir`)',
    'nothing was moved or suspended',
  )
  const ctx = await moveContext(o, catalog, lockMs)
  // A lock wait that runs out stops the move where it is, as a crash there would.
  let e: MoveEntry | undefined
  const places = [catalog, o.db, o.to]
    .filter((db, i, all) => all.indexOf(db) === i)
    .map((db) => ({ db, layout: o }))
  return explainLockWaits(
    places,
    lockMs,
    () => moveAfterwards(ctx.tenantId, e),
    async () => {
      const opened = await openMove(ctx, sourceName, catalogName)
      e = opened.entry
      return runSteps(ctx, opened, (next) => {
        e = next
      })
    },
  )
}

/** What a lock wait that ran out left of the move (`e`: its ledger entry, if it began). */
function moveAfterwards(tenantId: string, e: MoveEntry | undefined): string {
  if (e === undefined) {
    return (
      `This run of the move of tenant ${tenantId} changed nothing (it stopped before its ledger entry was read ` +
      'or written). Rerunning the same command starts the move, or continues an unfinished one.'
    )
  }
  const left =
    e.state === 'done'
      ? 'the tenant is moved; only the archive is left to remove'
      : e.state === 'switched'
        ? 'the placement is switched and the tenant has its status back; the erasure at the source is left'
        : 'the ledger keeps the step, the tenant stays suspended and the source is untouched'
  return (
    `The move of tenant ${tenantId} stopped after its step "${e.state}", as a crash there would: ${left}. ` +
    'Nothing is lost. Rerunning the same command continues the move from there.'
  )
}

/** Runs the move's steps from the ledger entry's state to `done`; `track` sees each new state. */
async function runSteps(
  ctx: Ctx,
  opened: { entry: MoveEntry; resumed: boolean },
  track: (e: MoveEntry) => void,
): Promise<MoveResult> {
  const { o, tenantId, catalog } = ctx
  const { entry, resumed } = opened
  let e = entry
  if (resumed) {
    await checkResumedArchive(entry.archive, o.archiveKey !== undefined, tenantId)
    if (await archiveGone(e)) e = { ...e, state: 'stale' }
  }
  let tables: TableChecksum[] = []
  let certificate: ErasureCertificate | undefined
  const step = async (state: MoveState) => {
    e = { ...e, state }
    track(e)
    o.onEvent?.({ type: 'step', op: 'move', step: state })
    await o.onStep?.(state)
  }
  for (;;) {
    switch (e.state) {
      case 'stale':
        await undoCopy(ctx, e)
        await tx(catalog, ctx.lockMs, (c) => recordCopyRemoved(c, ctx.ledger, tenantId))
        e = { ...e, exported: undefined, copied: false }
        await step('suspended')
        break
      case 'suspended': {
        const { manifest } = await guarded(ctx, e, () =>
          exportTenant({ ...o, tenantId, out: e.archive }),
        )
        await tx(catalog, ctx.lockMs, (c) => recordExport(c, ctx.ledger, tenantId, manifest))
        e = { ...e, exported: manifest }
        await step('exported')
        break
      }
      case 'exported':
        await guarded(ctx, e, () => importOnce(ctx, e))
        await tx(catalog, ctx.lockMs, (c) => recordImport(c, ctx.ledger, tenantId))
        e = { ...e, copied: true }
        await step('imported')
        break
      case 'imported': {
        await guarded(ctx, e, async () => {
          tables = await verifyDestination(ctx, e)
        })
        await tx(catalog, ctx.lockMs, (c) => setMoveState(c, ctx.ledger, tenantId, 'verified'))
        await step('verified')
        break
      }
      case 'verified':
        certificate = await cutOver(ctx, e)
        await step(ctx.sourceIsCatalog ? 'done' : 'switched')
        break
      case 'switched':
        certificate = await eraseSource(ctx, e, false)
        await tx(catalog, ctx.lockMs, (c) => setMoveState(c, ctx.ledger, tenantId, 'done'))
        await step('done')
        break
      case 'done': {
        if (tables.length === 0) tables = await destinationChecksums(ctx)
        await rm(e.archive, { force: true })
        return { tenantId, from: e.source, to: e.destination, resumed, tables, certificate }
      }
    }
  }
}

/** Reaches every database (before anything is written) and gathers what the steps share. */
async function moveContext(
  o: MoveOptions,
  catalog: pg.Pool,
  lockMs: number | undefined,
): Promise<Ctx> {
  // Every database is reached before anything is written.
  const cLayout = await explainUnreachable(catalog, () => resolveLayout(catalog, o))
  const sLayout = await explainUnreachable(o.db, () => resolveLayout(o.db, o))
  const dLayout = await explainUnreachable(o.to, () => resolveLayout(o.to, o))
  const tenantId = parseTenantId(cLayout.idType, o.tenantId)
  if (await sameDatabase(o.db, o.to, lockMs)) {
    throw new LifecycleError(
      `The destination is the same database as the source (another URL or pool of it): moving tenant ${tenantId} ` +
        'there would "verify" the copy against the source itself and then erase it. Nothing was changed.',
    )
  }
  return {
    o,
    tenantId,
    catalog,
    cLayout,
    sLayout,
    dLayout,
    sourceIsCatalog: await sameDatabase(o.db, catalog, lockMs),
    destIsCatalog: await sameDatabase(o.to, catalog, lockMs),
    ledger: cLayout.tenantsSchema,
    lockMs,
  }
}

/**
 * Whether two pools reach the same database, whatever URL or pool object each
 * was made from: an advisory lock held in a transaction on `a` is taken on `b`
 * only when `b` is another database (advisory locks belong to one database).
 */
async function sameDatabase(a: pg.Pool, b: pg.Pool, lockMs: number | undefined): Promise<boolean> {
  if (a === b) return true
  const key = randomBytes(8).readBigInt64BE().toString()
  const client = await a.connect()
  try {
    await client.query('begin')
    await limitLockWaits(client, lockMs)
    await client.query('select pg_catalog.pg_advisory_xact_lock($1::bigint)', [key])
    const { rows } = await b.query(
      'select pg_catalog.pg_try_advisory_xact_lock($1::bigint) as free',
      [key],
    )
    return rows[0].free !== true
  } finally {
    await client.query('rollback').catch(() => {})
    client.release()
  }
}

/**
 * Opens the ledger entry of the move (suspending the tenant), or takes up the
 * unfinished one of the same source and destination.
 */
/**
 * A resumed move goes on only with an archive key exactly when its archive was
 * written with one: without it, the later steps would not check a signed
 * archive; with it, they would refuse an unsigned one half-way.
 */
async function checkResumedArchive(
  archive: string,
  keyed: boolean,
  tenantId: string,
): Promise<void> {
  let signed: boolean
  try {
    signed = await archiveFileSigned(archive)
  } catch {
    return // no archive (not written yet, or removed when done): the steps that need one say so
  }
  if (signed === keyed) return
  throw new LifecycleError(
    signed
      ? `The unfinished move of tenant ${tenantId} wrote a signed archive: resume it with the same archive key ` +
          '(ROWTENANCY_ARCHIVE_KEY, or archiveKey), so every later step checks it. Nothing was changed.'
      : `The unfinished move of tenant ${tenantId} wrote its archive without an archive key: resume it without one, ` +
          'as it began. Nothing was changed.',
  )
}

/** The steps after the export and before the cut-over read the archive. */
const NEEDS_ARCHIVE: readonly MoveState[] = ['exported', 'imported', 'verified']

/**
 * Whether the resumed entry's step needs its archive and it is gone (an undo
 * that could not write the ledger removed it, or someone did): the move then
 * goes as a stale one (its own copy removed, see {@link undoCopy}, the tenant
 * copied anew), which is safe while the placement is not switched. After the
 * switch, the archive is what proves the source unchanged before its erasure:
 * without it, stop.
 */
async function archiveGone(e: MoveEntry): Promise<boolean> {
  const needs = NEEDS_ARCHIVE.includes(e.state) || e.state === 'switched'
  if (!needs) return false
  const gone = await access(e.archive).then(
    () => false,
    () => true,
  )
  if (!gone || e.state !== 'switched') return gone
  throw new LifecycleError(
    `The move of tenant ${e.tenantId} to ${e.destination} is switched (the tenant lives there now), but its archive ` +
      `${e.archive}, which proves the source rows unchanged before they are erased, is gone. Nothing was changed. ` +
      `Compare the source rows with the destination's, erase them with rowtenancy tenants erase --tenant-id ` +
      `${e.tenantId} against the source, then delete the tenant's ledger row ` +
      `(delete from ${MOVE_LEDGER} where tenant_id = '${e.tenantId}').`,
  )
}

async function openMove(
  ctx: Ctx,
  sourceName: string,
  catalogName: string,
): Promise<{ entry: MoveEntry; resumed: boolean }> {
  const { o, catalog, tenantId, cLayout } = ctx
  let entry = await tx(catalog, ctx.lockMs, async (c) => {
    await ensureMoveLedger(c, ctx.ledger)
    await installPlacements(c, { schema: cLayout.tenantsSchema, idType: cLayout.idType })
    return readMove(c, ctx.ledger, tenantId)
  })
  const finished =
    entry?.state === 'done' && entry.source === sourceName && entry.destination === o.toName
  const resumed = entry !== undefined && (entry.state !== 'done' || finished)
  if (!resumed) entry = await start(ctx, sourceName, catalogName)
  else if (entry!.destination !== o.toName || entry!.source !== sourceName) {
    throw new LifecycleError(
      `An unfinished move of tenant ${tenantId} from ${entry!.source} to ${entry!.destination} is in the ledger: ` +
        `finish it first (rowtenancy tenants move --tenant-id ${tenantId} --to <${entry!.destination}'s URL>).`,
    )
  }
  return { entry: entry!, resumed }
}

/** The destination's checksums of the tenant, proven equal to the archive's. */
async function verifyDestination(ctx: Ctx, e: MoveEntry): Promise<TableChecksum[]> {
  const { o, dLayout, tenantId } = ctx
  const m = await readArchiveManifest(e.archive, ctx.o.archiveKey)
  const tables = await tx(o.to, ctx.lockMs, (c) => checksumsAt(c, dLayout, m, tenantId), true)
  if (!sameAsManifest(m, tables)) {
    throw new LifecycleError(
      `The destination's copy of tenant ${tenantId} does not match the archive (the source is untouched).`,
    )
  }
  return tables
}

/** The destination's checksums of the tenant (a rerun after the move finished). */
function destinationChecksums(ctx: Ctx): Promise<TableChecksum[]> {
  const { o, dLayout, tenantId } = ctx
  return tx(
    o.to,
    ctx.lockMs,
    async (c) => {
      await bindTenant(c, tenantId)
      return tenantChecksums(c, dLayout, tenantId, (await tenantTables(c, dLayout)).tables)
    },
    true,
  )
}

/** Suspends the tenant and opens the ledger entry, in one catalog transaction. */
async function start(ctx: Ctx, sourceName: string, catalogName: string): Promise<MoveEntry> {
  const { o, tenantId, cLayout } = ctx
  if (o.toName === sourceName) {
    throw new LifecycleError(`Tenant ${tenantId} is already in ${sourceName}: nothing to move.`)
  }
  const placed = await tx(ctx.catalog, ctx.lockMs, (c) =>
    new PlacementMap({
      db: c,
      schema: cLayout.tenantsSchema,
      idType: cLayout.idType,
      ttlMs: 0,
    }).databaseOf(tenantId),
  )
  const where = placed === DEFAULT_DATABASE ? catalogName : placed
  if (where !== sourceName) {
    throw new LifecycleError(
      `Tenant ${tenantId} lives in ${where} (placement map), not in ${sourceName}: move it from there.`,
    )
  }
  const entry = await tx(ctx.catalog, ctx.lockMs, async (c) => {
    await lockTenant(c, tenantId)
    const t = await readTenant(c, cLayout, tenantId, { lock: true })
    const e: MoveEntry = {
      tenantId,
      source: sourceName,
      destination: o.toName,
      state: 'suspended',
      previousStatus: t.status,
      archive: join(o.workDir, `rowtenancy-move-${tenantId.replace(/[^A-Za-z0-9_-]/g, '_')}.rtar`),
    }
    await setStatus(c, cLayout, tenantId, 'suspended')
    await writeMove(c, ctx.ledger, e)
    return e
  })
  o.onEvent?.({ type: 'step', op: 'move', step: 'suspended' })
  await o.onStep?.('suspended')
  return entry
}

/**
 * Runs a step before the verification; a clean failure (not a crash, not a
 * lock wait that ran out) undoes the move so far: the entry is marked `stale`
 * first (so the ledger never points at a removed archive as a step to go on
 * from), then the destination copy is erased and the archive removed, then the
 * status is restored and the entry dropped. When a part of the undo fails, the
 * error says what is left: a `stale` entry (a rerun removes the copy first, then
 * copies anew), or, when the ledger could not be written at all, the step it
 * still holds (a rerun whose step needs the removed archive copies anew, see
 * {@link archiveGone}; with the archive kept, it continues).
 */
async function guarded<T>(ctx: Ctx, e: MoveEntry, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    // A lock wait that ran out is no failure of the move: it stays as a crash would leave it.
    if (lockTimeoutOf(err) !== undefined) throw err
    const restore = () =>
      failureOf(() =>
        tx(ctx.catalog, ctx.lockMs, async (c) => {
          await setStatus(c, ctx.cLayout, ctx.tenantId, e.previousStatus)
          await deleteMove(c, ctx.ledger, ctx.tenantId)
        }),
      )
    // A destination that holds another tenant of that id: its rows are not ours to
    // erase, and no stale entry may ask a rerun to: drop the entry, then the archive.
    if (err instanceof DestinationTaken) {
      const restored = await restore()
      if (restored !== undefined) throw unrecorded(ctx, e, err, restored, undefined, true)
      await rm(e.archive, { force: true })
      throw err
    }
    const marked = await failureOf(() =>
      tx(ctx.catalog, ctx.lockMs, (c) =>
        recordStale(c, ctx.ledger, ctx.tenantId, e.copied === true),
      ),
    )
    const undone = await failureOf(() => undoCopy(ctx, e))
    if (marked !== undefined) {
      throw unrecorded(ctx, e, err, marked, undone, await exists(e.archive))
    }
    if (undone !== undefined) {
      throw new LifecycleError(
        `The move of tenant ${ctx.tenantId} failed: ${messageOf(err)} Removing its copy at the destination ` +
          `failed too (${messageOf(undone)}): the move is marked stale and the tenant stays suspended; the source ` +
          'is untouched. Rerun the same command: it removes the copy first, then copies the tenant anew.',
        { cause: err },
      )
    }
    const restored = await restore()
    if (restored === undefined) throw err
    throw new LifecycleError(
      `The move of tenant ${ctx.tenantId} failed: ${messageOf(err)} Its copy at the destination and the archive ` +
        `are removed, but giving the tenant its status "${e.previousStatus}" back failed ` +
        `(${messageOf(restored)}): the move is marked stale and the tenant stays suspended; the source is ` +
        'untouched. Rerun the same command: it copies the tenant anew and finishes the move (or set the status ' +
        `back with rowtenancy tenants and delete the ledger row of tenant ${ctx.tenantId} to give up the move).`,
      { cause: err },
    )
  }
}

/** The error of a failed step whose undo could not write the ledger: it still holds `e.state`. */
function unrecorded(
  ctx: Ctx,
  e: MoveEntry,
  err: unknown,
  marked: unknown,
  undone: unknown,
  archiveKept: boolean,
): LifecycleError {
  const copy =
    undone !== undefined
      ? `removing its copy at the destination failed too (${messageOf(undone)}); `
      : archiveKept
        ? ''
        : 'its copy at the destination and the archive are removed; '
  const rerun = archiveKept
    ? 'it continues the move from that step.'
    : "it finds the archive gone, removes the move's own copy at the destination, and copies the tenant anew."
  return new LifecycleError(
    `The move of tenant ${ctx.tenantId} failed: ${messageOf(err)} Undoing it could not be recorded in the ` +
      `ledger (${messageOf(marked)}): the move is left at its step "${e.state}", ${copy}the tenant stays ` +
      `suspended and the source is untouched. Rerun the same command when the catalog is reachable and free: ${rerun}`,
    { cause: err },
  )
}

/** Runs `fn`; its failure, or undefined when it succeeded. */
async function failureOf(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn()
    return undefined
  } catch (err) {
    return err ?? new Error('failed')
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

/**
 * Removes what the move wrote at the destination (its copy, see
 * {@link destinationRows}), then the archive. Rows of the tenant id there that
 * the move cannot show it wrote are kept: a rerun's import then refuses them
 * as a fresh move does.
 */
async function undoCopy(ctx: Ctx, e: MoveEntry): Promise<void> {
  await tx(ctx.o.to, ctx.lockMs, async (c) => {
    await bindTenant(c, ctx.tenantId)
    await lockTenant(c, ctx.tenantId)
    const found = await destinationRows(c, ctx.dLayout, ctx.tenantId, e, ctx.destIsCatalog)
    if (found !== 'copy') return
    const { tables } = await tenantTables(c, ctx.dLayout)
    await eraseInTransaction(c, ctx.dLayout, ctx.tenantId, tables, {
      keepTenantRow: ctx.destIsCatalog,
    })
  })
  await rm(e.archive, { force: true })
}

/** The destination holds a tenant of that id with other data: not the move's copy. */
class DestinationTaken extends LifecycleError {}

/** Imports the archive unless an earlier run already did (the import commits before the ledger moves on). */
async function importOnce(ctx: Ctx, e: MoveEntry): Promise<void> {
  const m = await readArchiveManifest(e.archive, ctx.o.archiveKey)
  const present = await tx(
    ctx.o.to,
    ctx.lockMs,
    async (c) => {
      const row = await c.query(
        `select 1 from ${quoteQualified(ctx.dLayout.tenantsSchema, 'tenants')} where id = $1::${ctx.dLayout.idType}`,
        [ctx.tenantId],
      )
      if (row.rows.length === 0) return 'absent'
      const sums = await checksumsAt(c, ctx.dLayout, m, ctx.tenantId)
      if (sameAsManifest(m, sums)) return 'match'
      if (ctx.destIsCatalog && sums.every((s) => s.rows === 0)) return 'absent'
      return 'differs'
    },
    true,
  )
  if (present === 'match') return
  if (present === 'differs') {
    throw new DestinationTaken(
      `The destination already holds a tenant ${ctx.tenantId} with other data: move refused (erase it there, or pick another destination).`,
    )
  }
  await importTenant({
    ...ctx.o,
    db: ctx.o.to,
    in: e.archive,
    schema: ctx.dLayout.schema,
    reuseEmptyTenant: ctx.destIsCatalog,
    onEvent: ctx.o.onEvent,
  })
}

/**
 * Ends the cut-over: the destination row gets the tenant's status back, then in
 * the catalog the placement switches and the status is restored, and (when the
 * source is the catalog) the source rows are erased in that same transaction.
 */
async function cutOver(ctx: Ctx, e: MoveEntry): Promise<ErasureCertificate | undefined> {
  const m = await readArchiveManifest(e.archive, ctx.o.archiveKey)
  const { o, tenantId, cLayout } = ctx
  if (!ctx.sourceIsCatalog) {
    const sums = await tx(o.db, ctx.lockMs, (c) => checksumsAt(c, ctx.sLayout, m, tenantId), true)
    if (!sameAsManifest(m, sums)) return stale(ctx)
  }
  if (!ctx.destIsCatalog) {
    await tx(o.to, ctx.lockMs, (c) => setStatus(c, ctx.dLayout, tenantId, e.previousStatus))
  }
  const placement = { schema: cLayout.tenantsSchema, idType: cLayout.idType }
  const target = o.toName === (o.catalogName ?? DEFAULT_DATABASE) ? DEFAULT_DATABASE : o.toName
  if (!ctx.sourceIsCatalog) {
    await tx(ctx.catalog, ctx.lockMs, async (c) => {
      await lockTenant(c, tenantId)
      await setPlacement(c, placement, tenantId, target)
      await setStatus(c, cLayout, tenantId, e.previousStatus)
      await setMoveState(c, ctx.ledger, tenantId, 'switched')
    })
    return undefined
  }
  try {
    return await eraseSource(ctx, e, true, async (c) => {
      await setPlacement(c, placement, tenantId, target)
      await setStatus(c, cLayout, tenantId, e.previousStatus)
      await setMoveState(c, ctx.ledger, tenantId, 'done')
    })
  } catch (err) {
    if (err instanceof StaleSource) return stale(ctx)
    throw err
  }
}

class StaleSource extends Error {}

async function stale(ctx: Ctx): Promise<never> {
  // Reached from `verified`: the destination holds the move's copy.
  await tx(ctx.catalog, ctx.lockMs, (c) => recordStale(c, ctx.ledger, ctx.tenantId, true))
  throw new LifecycleError(
    `Rows of tenant ${ctx.tenantId} changed at the source after the export (written while it was suspended?): ` +
      'nothing was erased and the placement is unchanged. Run the move again: it copies the tenant anew.',
  )
}

/** Erases the tenant's rows at the source after checking them unchanged since the export. */
async function eraseSource(
  ctx: Ctx,
  e: MoveEntry,
  keepTenantRow: boolean,
  alsoInCatalog?: (c: Queryable) => Promise<void>,
): Promise<ErasureCertificate> {
  const m = await readArchiveManifest(e.archive, ctx.o.archiveKey)
  const { o, tenantId, sLayout } = ctx
  const actor = auditText(o.actor, 'actor', defaultActor())
  return tx(o.db, ctx.lockMs, async (c) => {
    await bindTenant(c, tenantId)
    await lockTenant(c, tenantId)
    const tenant = await readTenant(c, sLayout, tenantId)
    const { tables } = checkCompatible(m, sLayout, (await tenantTables(c, sLayout)).tables)
    const all = (await tenantTables(c, sLayout)).tables
    const sums = await tenantChecksums(c, sLayout, tenantId, tables)
    if (!sameAsManifest(m, sums)) {
      if (alsoInCatalog) throw new StaleSource()
      throw new LifecycleError(
        `Rows of tenant ${tenantId} were written at the source after the cut-over (a router with a stale placement?): ` +
          'nothing was erased there. Compare them with the destination, then erase the source with rowtenancy tenants erase.',
      )
    }
    const { before } = await eraseInTransaction(c, sLayout, tenantId, all, { keepTenantRow })
    const rows = before.reduce((n, b) => n + b.rows, 0)
    await auditLifecycle(c, 'audit_log', {
      reason: `tenant move to ${e.destination}`,
      actor,
      tenantId,
      statement: `rowtenancy tenants move: erased tenant ${tenantId} at ${e.source} after the copy verified (${rows} rows)`,
      rowCount: rows,
    })
    if (alsoInCatalog) await alsoInCatalog(c)
    const database = (await c.query('select current_database() as d')).rows[0].d as string
    return {
      kind: 'rowtenancy-erasure-certificate',
      tenant,
      database,
      schema: sLayout.schema,
      tables: before.map((b) => ({ ...b, rowsAfter: 0 })),
      erasedAt: new Date().toISOString(),
      actor,
      tenantRowErased: !keepTenantRow,
      dryRun: false,
    } satisfies ErasureCertificate
  })
}
