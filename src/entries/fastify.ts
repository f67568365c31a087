/**
 * `rowtenancy/fastify`: the Fastify 5 tenant middleware (`tenant()`), the resolvers
 * that find a request's tenant, and the problem+json helpers it answers with.
 * The other middleware entries list the same names.
 *
 * @module
 */

export { tenancyErrorHandler, tenant } from '../http/fastify.js'
export {
  createTenantResolution,
  fromHeader,
  fromHost,
  fromPath,
  fromSession,
  fromUser,
  httpStatusOf,
  PROBLEM_CONTENT_TYPE,
  PROBLEM_HEADERS,
  type ProblemDetails,
  problemFor,
  problemForError,
  problemHeaders,
  RETRY_AFTER_SECONDS,
  type ResolverContext,
  type TenantLookup,
  type TenantMiddlewareOptions,
  type TenantOutcome,
  type TenantRequest,
  type TenantResolver,
  type TenantSkip,
  type TenantValueKind,
} from '../http/index.js'
