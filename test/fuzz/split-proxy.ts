import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy in front of PostgreSQL that forwards the server's replies one
 * protocol message at a time, each in its own write a few milliseconds apart,
 * so the client reads an ErrorResponse and the ReadyForQuery after it in two
 * separate I/O turns (what a loaded network does now and then). Client to
 * server bytes pass through untouched.
 *
 * @example
 * ```ts
 * const proxy = await startSplitProxy('127.0.0.1', 5432)
 * const pool = new pg.Pool({ connectionString: `postgres://u:p@127.0.0.1:${proxy.port}/db` })
 * await proxy.close()
 * ```
 */
export interface SplitProxy {
  readonly port: number
  close(): Promise<void>
}

export async function startSplitProxy(host: string, port: number, gapMs = 3): Promise<SplitProxy> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = connect(port, host)
    sockets.add(client)
    sockets.add(upstream)
    client.pipe(upstream)
    let pending = Buffer.alloc(0)
    // (no SSL: every server message is a type byte and an int32 length)
    let chain = Promise.resolve()
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      const messages: Buffer[] = []
      for (;;) {
        if (pending.length < 5) break
        const length = pending.readUInt32BE(1)
        if (pending.length < 1 + length) break
        messages.push(pending.subarray(0, 1 + length))
        pending = pending.subarray(1 + length)
      }
      chain = chain.then(async () => {
        for (const m of messages) {
          if (client.destroyed) return
          client.write(m)
          await new Promise((r) => setTimeout(r, gapMs))
        }
      })
    })
    const end = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end)
    upstream.on('error', end)
    client.on('close', end)
    upstream.on('close', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
