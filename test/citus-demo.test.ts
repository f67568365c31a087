import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { NOT_CITUS, onCitus } from './helpers/citus.js'
import { serverUrl } from './helpers/db.js'

const root = fileURLToPath(new URL('..', import.meta.url))

describe.skipIf(!onCitus())(`the finance demo migrated into the cluster (${NOT_CITUS})`, () => {
  it('legacy schemas -> schema generate -> citus distribute -> migrate --all -> verify -> doctor, then the API on the coordinator passes the smoke checks', async () => {
    const out = await new Promise<{ code: number | null; text: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'examples/finance/demo.ts',
          '--citus',
          '--smoke',
          '--tenants',
          '6',
          '--scale',
          '0.1',
        ],
        {
          cwd: root,
          env: { ...process.env, CITUS_URL: serverUrl() },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
      let text = ''
      child.stdout.on('data', (d) => (text += d))
      child.stderr.on('data', (d) => (text += d))
      child.on('error', reject)
      child.on('exit', (code) => resolve({ code, text }))
    })
    expect(out.text).not.toMatch(/demo failed/)
    expect(out.text).toMatch(/\$ rowtenancy citus distribute/)
    expect(out.text).toMatch(/6 tenants: 6 migrated, 0 skipped, 0 blocked, 0 failed/)
    expect(out.text).toContain('smoke: all checks passed')
    expect(out.text).not.toMatch(/\bFAIL\b/)
    expect(out.code).toBe(0)
  }, 240_000)
})
