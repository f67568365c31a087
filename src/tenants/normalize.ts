import { domainToASCII } from 'node:url'
import { InvalidInputError } from '../errors/index.js'

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/**
 * Whether `text` holds a control character (C0, DEL or C1: line breaks, tabs,
 * terminal escapes), which no tenant name, header value or audit text may carry.
 *
 * @example
 * ```ts
 * hasControlCharacters('Acme\nInc') // true
 * ```
 */
export function hasControlCharacters(text: string): boolean {
  return CONTROL.test(text)
}

const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/

/**
 * Validates and normalises a tenant slug: trimmed, lower case, 1-63 characters of
 * `a-z`, `0-9` and inner `-` (a valid DNS label, so it can be a subdomain).
 *
 * @example
 * ```ts
 * normalizeSlug(' Acme ') // 'acme'
 * normalizeSlug('acme corp') // InvalidInputError: spaces are not allowed
 * ```
 */
export function normalizeSlug(input: unknown): string {
  if (typeof input !== 'string') throw new InvalidInputError('A tenant slug must be a string.')
  const slug = input.trim().normalize('NFKC').toLowerCase()
  if (!SLUG.test(slug)) {
    throw new InvalidInputError(
      `Invalid tenant slug ${JSON.stringify(input.slice(0, 80))}: use 1-63 characters of a-z, 0-9 ` +
        `and '-' (not at either end), no spaces; for example ${JSON.stringify(slugify(input) || 'acme')}.`,
    )
  }
  return slug
}

/**
 * Turns any text (a schema name, a company name) into a valid slug candidate.
 *
 * @example
 * ```ts
 * slugify('Tenant_01 (EU)') // 'tenant-01-eu'
 * ```
 */
export function slugify(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/g, '')
}

/**
 * Validates and normalises a domain name: lower case, trailing dot removed,
 * IDN labels converted to punycode, every label a valid DNS label. Rejects ports,
 * paths, spaces and wildcards.
 *
 * @example
 * ```ts
 * normalizeDomain('Acme.Example.COM.') // 'acme.example.com'
 * normalizeDomain('bücher.example') // 'xn--bcher-kva.example'
 * ```
 */
export function normalizeDomain(input: unknown): string {
  if (typeof input !== 'string') throw new InvalidInputError('A domain must be a string.')
  const trimmed = input.trim().replace(/\.$/, '')
  const invalid = () =>
    new InvalidInputError(
      `Invalid domain ${JSON.stringify(input.slice(0, 80))}: give a host name such as ` +
        "'acme.example.com' (no scheme, port, path or spaces).",
    )
  if (trimmed.length === 0 || trimmed.length > 253 || /[\s/:@*?#\\]/.test(trimmed)) throw invalid()
  const ascii = domainToASCII(trimmed.toLowerCase())
  if (!ascii || ascii.length > 253) throw invalid()
  const labels = ascii.split('.')
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) throw invalid()
  return ascii
}
