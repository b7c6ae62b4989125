/**
 * openai-wrapi: a drop-in for the `openai` package that calls your stage's metering proxy, signed
 * with your AWS credentials, and the admin API of the proxy.
 *
 * - `import OpenAI from 'openai-wrapi'` — the `openai` client (same calls, types, streaming,
 *   retries, errors) plus the options `project`, `staging`, `caching`.
 * - `setProject`, `setStaging`, `setCaching` — defaults for later clients and for the clients
 *   other libraries build (importing this module patches the `openai` package, as
 *   `openai-wrapi/register` does).
 * - `setLimits`, `removeLimit`, `getLimits`, `listAlerts`, `getDigest`, `getUsage`, `setPrice`, `removePrice`,
 *   `getPrices`, `flushCache`, `grantMember`, `revokeMember`, `getMembers` — the admin functions.
 * - `createFetch`, `proxyBaseURL` — for clients that do not use the `openai` package.
 * - `budgetOf(response)` — the cost and remaining budget the proxy reported for a call.
 *
 * Everything else the `openai` package exports (errors, `toFile`, `AzureOpenAI`, ...) is
 * re-exported unchanged.
 */
import './register.ts';

export * from 'openai';
export { OpenAI, OpenAI as default, isWrapiClient, type ClientOptions, type WrapiOptions } from './client.ts';
export { getSettings, resetSettings, setCaching, setProject, setStaging, type Settings } from './settings.ts';
export {
  adminTarget, flushCache, getDigest, getLimits, getMembers, getPrices, getUsage, grantMember, invokeAdmin, listAlerts, removeLimit, removePrice, revokeMember,
  setLimits, setPrice,
  type AdminOptions, type AlertDto, type AlertsReport, type DailyDigest, type DigestReport, type LimitDto, type LimitKind, type LimitScope, type LimitValues, type LimitStatus, type LimitsReport, type MemberScope, type MembersReport,
  type PriceDto, type PricesReport, type ProjectMembersDto, type UsageDto, type UsageReport, type UsageTotals,
} from './admin.ts';
export { createFetch, proxyBaseURL, type FetchOptions } from './fetch.ts';
export { signedFetch, type SignedFetchOptions } from './sign.ts';
export { budgetOf, WARN_AT, type Budget } from './budget.ts';
export { resolveTarget, type StageTarget, type TargetOptions } from './target.ts';
export type { AwsCredentials, CredentialOptions, CredentialsProvider } from './credentials.ts';
export { WrapiAccessDeniedError, WrapiAdminError, WrapiConfigError, WrapiConnectionError, WrapiError } from './errors.ts';
export { patchOpenAIClass, register, registered, unregister } from './register.ts';
export {
  HEADER_BUDGET_LIMIT, HEADER_BUDGET_REMAINING, HEADER_BUDGET_SCOPE, HEADER_CACHE, HEADER_CACHING, HEADER_COST, HEADER_PROJECT,
} from '../runtime/core/protocol.ts';
