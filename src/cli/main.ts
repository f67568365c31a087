#!/usr/bin/env node
import { runCli } from './program.js'

// `rowtenancy verify | head` closes stdout early: stop quietly instead of crashing on EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
  throw err
})

process.exitCode = await runCli(process.argv)
