/**
 * One load run of the request path: how many requests finished in how long,
 * and their latency percentiles.
 *
 * @example
 * ```ts
 * const run: LoadRun = { requests: 12_000, ms: 3000, p50: 1.9, p99: 6.2 }
 * ```
 */
export interface LoadRun {
  readonly requests: number
  readonly ms: number
  /** Median request latency, ms. */
  readonly p50: number
  /** 99th percentile request latency, ms. */
  readonly p99: number
}

/**
 * What one server backend holds after a connection touched every tenant once.
 *
 * @example
 * ```ts
 * const m: MemoryProbe = { contextsBytes: 9_000_000, contextsBytesBefore: 1_100_000, rssAnonBytes: 12_000_000, vmRssBytes: 30_000_000 }
 * ```
 */
export interface MemoryProbe {
  /** `sum(total_bytes)` of `pg_backend_memory_contexts` after touching every tenant. */
  readonly contextsBytes: number
  /** The same, right after connecting (one query). */
  readonly contextsBytesBefore: number
  /** `RssAnon` of `/proc/<backend pid>/status` (private memory), when the server is local. */
  readonly rssAnonBytes: number | null
  /** `VmRSS` of the same (includes shared buffers the backend touched). */
  readonly vmRssBytes: number | null
}

/**
 * Everything measured at one tenant count. Times are milliseconds, one
 * element per repetition.
 *
 * @example
 * ```ts
 * const size: SizeResult = results.sizes[0]
 * size.schemaChange.schema // [812.4, 790.2, 801.7]
 * ```
 */
export interface SizeResult {
  readonly tenants: number
  readonly rows: { users: number; accounts: number; transactions: number }
  /** The legacy generator and the migration (copy + verify) of every tenant. */
  readonly build: { generateMs: number; migrateMs: number; migratedRows: number }
  /** Add a column and an index: once on the shared table vs once per tenant schema. */
  readonly schemaChange: { row: number[]; schema: number[] }
  /** Sum of balances per tenant: one GROUP BY vs a UNION ALL over every schema vs a loop. */
  readonly report: { row: number[]; union: number[]; unionError?: string; loop: number[] }
  /**
   * Point reads and small writes for random tenants, pool of 10: `row` through the
   * plugin + RLS binding, `schema` with `search_path`, `rowPlain` the shared tables
   * and RLS binding on plain `pg` (the database's share of `row`).
   */
  readonly requests: { row: LoadRun[]; rowPlain: LoadRun[]; schema: LoadRun[] }
  readonly footprint: {
    row: { classes: number; bytes: number }
    schema: { classes: number; bytes: number }
  }
  readonly memory: { row: MemoryProbe; schema: MemoryProbe }
}

/**
 * The output of a per-feature benchmark (`bench/<name>.ts`) run as a child process.
 *
 * @example
 * ```ts
 * const f: FeatureResult = { name: 'plugin', quick: true, ok: true, ms: 41_000, lines: ['plugin / baseline 1.04'] }
 * ```
 */
export interface FeatureResult {
  readonly name: string
  /** Run with `--quick`. */
  readonly quick: boolean
  readonly ok: boolean
  readonly ms: number
  /** Its output, as printed (blank runs collapsed, at most 80 lines). */
  readonly lines: string[]
  /** A machine-readable result, when the benchmark printed one (a JSON line). */
  readonly json?: unknown
  readonly error?: string
}

/**
 * The whole report `bench/run.ts` writes to `bench/results/<date>.json`.
 *
 * @example
 * ```ts
 * const results: BenchResults = JSON.parse(readFileSync('bench/results/2026-11-27.json', 'utf8'))
 * ```
 */
export interface BenchResults {
  readonly mode: 'quick' | 'full'
  readonly startedAt: string
  readonly finishedAt: string
  readonly machine: {
    cpus: number
    cpuModel: string
    memoryBytes: number
    platform: string
    node: string
    /** 1-minute load average at the start and the end of the run (other work on the machine). */
    loadAverage?: { start: number; end: number }
  }
  readonly postgres: { version: string; server: 'embedded' | 'DATABASE_URL' }
  readonly settings: {
    scale: number
    seed: number
    repetitions: number
    pool: number
    concurrency: number
    requestMs: number
    readShare: number
  }
  readonly sizes: SizeResult[]
  readonly features: FeatureResult[]
}
