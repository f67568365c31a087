/**
 * Every relative link in README.md and docs/*.md points at a file that exists
 * (and, for `#anchor` links within the same page, at a heading that exists).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..')
const pages = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
]

const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-')

describe('documentation links', () => {
  for (const page of pages) {
    it(`${page}: every relative link resolves`, () => {
      const text = readFileSync(join(root, page), 'utf8').replace(/```[\s\S]*?```/g, '')
      const anchors = new Set(
        [...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1] as string)),
      )
      const broken: string[] = []
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1] as string
        if (/^[a-z]+:/i.test(target)) continue
        const [path, anchor] = target.split('#')
        if (path === '' || path === undefined) {
          if (anchor && !anchors.has(anchor)) broken.push(target)
          continue
        }
        if (!existsSync(join(root, dirname(page), path))) broken.push(target)
      }
      expect(broken).toEqual([])
    })
  }
})
