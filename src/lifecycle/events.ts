/**
 * What a lifecycle operation reports while it runs (for a progress bar, plain
 * log lines or `--json`).
 *
 * @example
 * ```ts
 * const onEvent = (e: LifecycleEvent) => { if (e.type === 'table') console.log(e.table, e.rows) }
 * ```
 */
export type LifecycleEvent =
  | {
      readonly type: 'start'
      readonly op: LifecycleOp
      readonly tenantId: string
      readonly tables: number
      readonly rows: number
    }
  | {
      readonly type: 'table'
      readonly op: LifecycleOp
      readonly table: string
      readonly rows: number
      readonly index: number
      readonly of: number
    }
  | {
      readonly type: 'step'
      readonly op: LifecycleOp
      readonly step: string
      readonly detail?: string
    }
  | { readonly type: 'done'; readonly op: LifecycleOp; readonly rows: number; readonly ms: number }

/** The lifecycle operations. @example `const op: LifecycleOp = 'export'` */
export type LifecycleOp = 'export' | 'import' | 'erase' | 'move'

/** A listener for {@link LifecycleEvent}s. @example `const l: LifecycleListener = console.log` */
export type LifecycleListener = (event: LifecycleEvent) => void
