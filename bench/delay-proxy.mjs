/**
 * A TCP proxy that holds every chunk for half a round trip in each direction, so a
 * bench can run its client against a server "across a network" on one machine
 * (this machine has no netem). Run as a child process (its CPU is not the
 * bench's): `node bench/delay-proxy.mjs <targetHost> <targetPort> <rttMs>`; it
 * prints `listening <port>` on stdout once it accepts connections.
 *
 * Order is kept per direction. Timers have the event loop's granularity (1 ms),
 * so a chunk waits at least `max(1, round(rttMs / 2))` ms each way: the bench
 * measures the round trip it gets and prints that, not the one asked for.
 */
import net from 'node:net'

const [host, portText, rttText] = process.argv.slice(2)
const oneWayMs = Math.max(1, Math.round(Number(rttText) / 2))

/** Forwards `from` to `to`, each chunk `oneWayMs` after it arrived. */
function forwardDelayed(from, to) {
  const queue = []
  let scheduled = false
  const flush = () => {
    const now = performance.now()
    while (queue.length > 0 && queue[0].due <= now + 0.1) to.write(queue.shift().chunk)
    scheduled = queue.length > 0
    if (scheduled) setTimeout(flush, queue[0].due - now)
  }
  from.on('data', (chunk) => {
    queue.push({ due: performance.now() + oneWayMs, chunk })
    if (!scheduled) {
      scheduled = true
      setTimeout(flush, oneWayMs)
    }
  })
  from.on('end', () => {
    const close = () => (queue.length > 0 ? setTimeout(close, oneWayMs) : to.end())
    close()
  })
}

const server = net.createServer((client) => {
  client.setNoDelay(true)
  const upstream = net.connect({ host, port: Number(portText) })
  upstream.setNoDelay(true)
  forwardDelayed(client, upstream)
  forwardDelayed(upstream, client)
  const drop = () => {
    client.destroy()
    upstream.destroy()
  }
  client.on('error', drop)
  upstream.on('error', drop)
  client.on('close', drop)
  upstream.on('close', drop)
})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`)
})
process.on('disconnect', () => process.exit(0))
process.on('SIGTERM', () => process.exit(0))
