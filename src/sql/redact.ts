/**
 * The password of a URL's login: from `//user:` to the last `@` of the text's
 * word (a raw `@` in a password, as in `app:p@ss@db`, does not end it; a
 * percent-encoded one is part of it anyway).
 */
const URL_PASSWORD = /(\/\/[^\s:/?#@]*:)\S*@/g

/**
 * A `password` of a URL's query string (`?password=...&`, which libpq reads
 * too): up to the next `&`.
 */
const QUERY_PASSWORD = /([?&]password=)[^\s&]*/gi

/**
 * A `password` of a libpq key/value connection string (`host=db
 * password=secret`, `password = 'a b\'c'`), or a `PGPASSWORD=` (any
 * `...password=`) of an environment listing: a quoted value up to its closing
 * quote, else up to the next space. A `***` (hidden already, in a line hidden
 * again) is left as it is, with the quote or stop after it.
 */
const KEY_VALUE_PASSWORD =
  /((?<![?&\w])\w*password\s*=\s*)(?:'(?:\\.|[^'\\])*'?|(?!'|\*\*\*["'),.;]*(?:\s|$))\S+)/gi

/**
 * Hides every connection password in `text`, a message the CLI prints or an
 * error's stack: the password of a URL's login (`postgres://app:***@db`, raw
 * `@` and percent-encoded characters in it included), a `password=` of a URL's
 * query, and `password=...` / `password='...'` of a libpq key/value connection
 * string, and `PGPASSWORD=...`. When the end of a password is uncertain it
 * hides more rather than less (the rest of a word).
 *
 * @example
 * ```ts
 * hidePasswords('at postgres://app:p@ss@db.internal/app') // 'at postgres://app:***@db.internal/app'
 * hidePasswords("host=db password='a b' user=app")        // 'host=db password=*** user=app'
 * ```
 */
export function hidePasswords(text: string): string {
  return text
    .replace(URL_PASSWORD, '$1***@')
    .replace(QUERY_PASSWORD, '$1***')
    .replace(KEY_VALUE_PASSWORD, '$1***')
}
