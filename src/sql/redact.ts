/**
 * The login of a URL up to its password: `//user:` (a raw `@` in the user name included; no
 * `[`, which starts an IPv6 host: `//app@[::1]:5432` has no password).
 */
const URL_USER = String.raw`(\/\/[^\s:/?#[\]]*:)`

/**
 * Not a port: `//host:5432/db`, `//host:5432 ...` or `//host:5432.` has no
 * password. A password made of digits alone still matches the same-word form below.
 */
const NOT_PORT = String.raw`(?!\d+(?:[^\w@%]|$))`

/** After the login's `@`: a host, then the path, query, a space, a quote or the end. */
const HOST_FOLLOWS = String.raw`(?=[\w.%:[\]-]*(?:[/?#\s"'\x60]|$))`

/**
 * How far the second and third shapes below may run to their `@`: the bound keeps a long line
 * of `//host:` words without an `@` linear to scan.
 */
const SPACED_PASSWORD_MAX = 256

/**
 * The password of a URL's login, in the three shapes a password can take
 * (the driver's URL parser takes the login up to the last `@` before the first
 * `/`, `?` or `#`, and percent-encodes a raw space, quote or `@` in it):
 * - to the last `@` before a `/`, `?`, `#` or the end of the line, spaces and
 *   raw `@` included (`//app:p ss@w0rd@db/app`);
 * - to the last `@` of the word, at most {@link SPACED_PASSWORD_MAX} characters on
 *   (`//app:pa/ss@db`: a raw `/`, `?` or `#`);
 * - across spaces to the first word holding an `@` (at most
 *   {@link SPACED_PASSWORD_MAX} characters on), then to its last `@` (`//app:a b/c@db`).
 */
const URL_PASSWORD = new RegExp(
  `${URL_USER}(?:${NOT_PORT}[^/?#\\n\\r]*@${HOST_FOLLOWS}|\\S{0,${SPACED_PASSWORD_MAX}}@|${NOT_PORT}[^@\\n\\r]{0,${SPACED_PASSWORD_MAX}}@(?:\\S*@)?)`,
  'g',
)

/**
 * A `password` (or `sslpassword`, any `...password`) of a URL's query string
 * (`?password=...&`, which libpq reads too): up to the next `&` or the end of
 * the line (a raw space does not end it).
 */
const QUERY_PASSWORD = /([?&]\w*password=)[^&\n\r]*/gi

/**
 * The key of a password: libpq's `password` / `sslpassword` (spaces around the
 * `=` allowed, as libpq does), a `PGPASSWORD` (any `...password`) of an
 * environment listing, or a quoted `"password":` / `password: '...'` of a JSON
 * or inspected object (then only before a quoted value).
 */
const PASSWORD_KEY = String.raw`((?<![?&\w])\w*password(?:\s*=\s*|["']?\s*:\s*(?=["'])))`

/**
 * A password value: quoted, up to its closing quote (a backslash escapes the
 * next character, a doubled quote is kept), or unterminated to the end; else up
 * to the next space not escaped by a backslash. A `***` (hidden already, in a
 * line hidden again) is left as it is, with the quote or stop after it.
 */
const PASSWORD_VALUE = String.raw`(?:'(?:\\[\s\S]|''|[^'\\])*'?|"(?:\\[\s\S]|""|[^"\\])*"?|(?!['"]|\*\*\*["'),.;]*(?:\s|$))(?:\\[\s\S]?|[^\s\\])+)`

/**
 * A `password` of a libpq key/value connection string (`host=db
 * password=secret`, `password = 'a b\'c'`, `password='it''s'`, `password=a\ b`),
 * or of an environment listing (`PGPASSWORD="a b"`) or an object (`"password":"x"`).
 */
const KEY_VALUE_PASSWORD = new RegExp(PASSWORD_KEY + PASSWORD_VALUE, 'gi')

/**
 * Hides every connection password in `text`, a message the CLI prints or an
 * error's stack: the password of a URL's login (`postgres://app:***@db`, raw
 * `@`, spaces and percent-encoded characters in it included), a `password=` of
 * a URL's query, and `password=...` / `password='...'` of a libpq key/value
 * connection string, and `PGPASSWORD=...`. When the end of a password is
 * uncertain it hides more rather than less (up to the end of the line).
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
