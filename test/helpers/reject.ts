/** The error `p` rejects with; fails the test when it resolves. */
export async function reject(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}
