export {
  PROBLEM_CONTENT_TYPE,
  PROBLEM_HEADERS,
  type ProblemDetails,
  problemFor,
  problemForError,
  problemHeaders,
  RETRY_AFTER_SECONDS,
} from './problem.js'
export { createTenantResolution, type TenantOutcome } from './resolve-tenant.js'
export {
  fromHeader,
  fromHost,
  fromPath,
  fromSession,
  fromUser,
  type TenantValueKind,
} from './resolvers.js'
export { httpStatusOf } from './status.js'
export type {
  ResolverContext,
  TenantLookup,
  TenantMiddlewareOptions,
  TenantRequest,
  TenantResolver,
  TenantSkip,
} from './types.js'
