/**
 * Progress events of a migration run, for progress bars and `--json` output.
 * `rows` in `plan` / `tenant-start` are estimates (catalog statistics).
 *
 * @example
 * ```ts
 * await migrate({ db: pool, all: true, onEvent: (e) => { if (e.type === 'tenant-done') console.log(e.tenantId) } })
 * ```
 */
export type MigrationEvent =
  | {
      readonly type: 'plan'
      readonly tenants: number
      readonly toCopy: number
      readonly rows: number
      readonly dryRun: boolean
    }
  | {
      readonly type: 'tenant-start'
      readonly tenantId: string
      readonly schema: string
      readonly rows: number
      readonly tables: number
    }
  | {
      readonly type: 'table-copied'
      readonly tenantId: string
      readonly table: string
      readonly rows: number
    }
  | { readonly type: 'tenant-verified'; readonly tenantId: string; readonly ok: boolean }
  | {
      readonly type: 'tenant-done'
      readonly tenantId: string
      readonly rows: number
      readonly ms: number
    }
  | { readonly type: 'tenant-skipped'; readonly tenantId: string; readonly reason: string }
  | { readonly type: 'tenant-failed'; readonly tenantId: string; readonly error: string }
  | { readonly type: 'indexes-deferred'; readonly indexes: readonly string[] }
  | { readonly type: 'indexes-built'; readonly indexes: readonly string[] }
  | { readonly type: 'sequences'; readonly adjusted: number }
  | { readonly type: 'finished'; readonly ok: boolean; readonly ms: number }

/**
 * A listener for {@link MigrationEvent}s. It must not throw; errors it throws are ignored.
 */
export type MigrationListener = (event: MigrationEvent) => void

/** @internal calls the listener, swallowing its errors */
export function emit(listener: MigrationListener | undefined, event: MigrationEvent): void {
  if (!listener) return
  try {
    listener(event)
  } catch {
    // a broken progress renderer must not break the migration
  }
}
