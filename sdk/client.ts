// The drop-in client: the real `OpenAI` class, pointed at the stage's proxy through its public
// options (`baseURL`, `fetch`) and signing every attempt, retries included, in `prepareRequest`,
// the hook openai-node runs before each attempt (its Bedrock provider signs there too).
// A namespace import: a named import of `OpenAI` from openai 3 (which has none) would fail at link
// time with Node's message; this way the check below says what is wrong and what works.
import * as openai from 'openai';
import type { SignatureV4 } from '@smithy/signature-v4';
import { watchBudget } from './budget.ts';
import type { CredentialOptions } from './credentials.ts';
import { prepareProxyRequest, signerFor, type MutableRequest } from './proxy-call.ts';
import { checkProject, checkStaging, getSettings } from './settings.ts';
import { sendSigned } from './sign.ts';
import { isOpenAIUrl, resolveTarget, type StageTarget } from './target.ts';
import { ownCopyDir, unsupportedCopy } from './openai-copies.ts';

import BaseOpenAI = openai.OpenAI;
type BaseClientOptions = openai.ClientOptions;

if (typeof openai.OpenAI !== 'function') throw unsupportedCopy(ownCopyDir());

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Options of openai-wrapi, on top of the `openai` client's. */
export interface WrapiOptions extends CredentialOptions {
  /**
   * The project calls are billed to (sent as `openai-proxy-project`; not OpenAI's project id).
   * Default: {@link setProject}, else `OPENAI_DEFAULT_PROJECT`, else `N/A`.
   */
  project?: string | null;
  /** The stage to call, e.g. `dev` or `prod`. Default: `setStaging`, else `OPENAI_DEFAULT_STAGING`, else `dev`. */
  staging?: string;
  /** Let the proxy answer from its cache. Default: `setCaching`, else `OPENAI_DEFAULT_CACHING`, else true. */
  caching?: boolean;
  /** The stage's proxy URL. Default: stack outputs, or `OPENAI_API_KEY=sk-<id>` (see the README). */
  proxyUrl?: string;
  /** AWS region to sign for. Default: from the outputs or the URL, else `AWS_REGION`. */
  region?: string;
}

/** The `openai` client's options (`apiKey` is not needed and ignored) plus {@link WrapiOptions}. */
export interface ClientOptions extends Omit<BaseClientOptions, 'project'>, WrapiOptions {}

/** Sent as the openai client's key: it must have one, and the proxy never sees it. */
export const API_KEY_PLACEHOLDER = 'openai-wrapi-signs-requests-with-aws';

/** Marks instances of {@link OpenAI}, so the register patch leaves them alone. */
export const WRAPI_CLIENT = Symbol.for('openai-wrapi.client');
const INNER_FETCH = Symbol.for('openai-wrapi.inner-fetch');

/**
 * `OpenAI` from the `openai` package, calling a stage's proxy: same methods, types, streaming,
 * retries and errors, plus `project`, `staging` and `caching`. Throws `WrapiConfigError` when the
 * stage's proxy URL cannot be found.
 *
 * @example
 * import OpenAI from 'openai-wrapi';
 * const client = new OpenAI({ project: 'my-project', staging: 'dev' });
 * const chat = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] });
 */
export class OpenAI extends BaseOpenAI {
  /** The project calls are billed to. */
  declare project: string;
  /** The stage this client calls. */
  readonly staging: string;
  /** Whether the proxy may answer from its cache. */
  readonly caching: boolean;
  /** Where the stage's proxy is, and where that was found. */
  readonly target: StageTarget;
  readonly #signer: SignatureV4;
  readonly #given: ClientOptions;
  readonly #innerFetch: Fetch | undefined;

  constructor(options: ClientOptions = {}) {
    const defaults = getSettings();
    const staging = checkStaging(options.staging ?? defaults.staging, 'staging');
    const project = checkProject(options.project ?? defaults.project, 'project');
    const caching = options.caching ?? defaults.caching;
    const target = resolveTarget(staging, { proxyUrl: options.proxyUrl ?? proxyBase(options.baseURL), region: options.region });
    const inner = unwrapFetch(options.fetch as Fetch | undefined);
    const {
      staging: _staging, caching: _caching, proxyUrl: _proxyUrl, region: _region, credentials: _credentials, profile: _profile,
      project: _project, apiKey: _apiKey, ...rest
    } = options;
    const signer = signerFor(target, { credentials: options.credentials, profile: options.profile });
    super({ ...rest, apiKey: API_KEY_PLACEHOLDER, project, baseURL: target.baseURL, fetch: watchingFetch(inner, staging, signer) });
    // openai before 4.4x has no `project` option of its own to keep it for us.
    this.project = project;
    this.staging = staging;
    this.caching = caching;
    this.target = target;
    this.#given = options;
    this.#innerFetch = inner;
    this.#signer = signer;
    Object.defineProperty(this, WRAPI_CLIENT, { value: true });
  }

  /** Signs each attempt afresh; the bearer token and OpenAI account headers never leave. */
  protected override async prepareRequest(request: MutableRequest, context: { url: string; options: unknown }): Promise<void> {
    await super.prepareRequest(request as never, context as never);
    await prepareProxyRequest(this.#signer, request, context.url, { project: this.project, caching: this.caching });
  }

  /** A copy with some options changed; the wrapi options carry over unless given. */
  override withOptions(options: Partial<ClientOptions>): this {
    const sameStage = options.staging === undefined || options.staging === this.staging;
    const explicitUrl = this.#given.proxyUrl ?? proxyBase(this.#given.baseURL);
    return super.withOptions({
      project: this.project,
      staging: this.staging,
      caching: this.caching,
      proxyUrl: sameStage ? explicitUrl : undefined,
      baseURL: undefined,
      region: this.#given.region,
      credentials: this.#given.credentials,
      profile: this.#given.profile,
      fetch: this.#innerFetch,
      ...options,
    } as Partial<BaseClientOptions>);
  }
}

/**
 * The transport: the caller's fetch (or the global one), re-signing once for a wrong local clock
 * and watching budget headers on the way back.
 */
function watchingFetch(inner: Fetch | undefined, stage: string, signer: SignatureV4): Fetch {
  const send: Fetch = async (input, init) => {
    const res = await sendSigned(signer, inner ?? globalThis.fetch, String(input), init ?? {});
    watchBudget(res, stage);
    return res;
  };
  Object.defineProperty(send, INNER_FETCH, { value: inner });
  return send;
}

/** `withOptions` hands our own transport back to the constructor: take the caller's fetch out. */
function unwrapFetch(fetch: Fetch | undefined): Fetch | undefined {
  return fetch && INNER_FETCH in fetch ? (fetch as unknown as Record<symbol, Fetch | undefined>)[INNER_FETCH] : fetch;
}

/** True for clients made by this package (not by the register patch). */
export const isWrapiClient = (client: unknown): client is OpenAI =>
  typeof client === 'object' && client !== null && WRAPI_CLIENT in client;

// The `OpenAI.*` types of the `openai` package (OpenAI.ChatCompletion, OpenAI.Chat.Completions...).
// Generated from openai's client.d.ts; test/sdk-types.test.ts checks that none is missing.
// BEGIN GENERATED NAMESPACE
export declare namespace OpenAI {
  export type RequestOptions = BaseOpenAI.RequestOptions; export type AllModels = BaseOpenAI.AllModels;
  export type ChatModel = BaseOpenAI.ChatModel; export type ComparisonFilter = BaseOpenAI.ComparisonFilter;
  export type CompoundFilter = BaseOpenAI.CompoundFilter;
  export type CustomToolInputFormat = BaseOpenAI.CustomToolInputFormat;
  export type ErrorObject = BaseOpenAI.ErrorObject; export type FunctionDefinition = BaseOpenAI.FunctionDefinition;
  export type FunctionParameters = BaseOpenAI.FunctionParameters; export type Metadata = BaseOpenAI.Metadata;
  export type OAuthErrorCode = BaseOpenAI.OAuthErrorCode; export type Reasoning = BaseOpenAI.Reasoning;
  export type ReasoningEffort = BaseOpenAI.ReasoningEffort;
  export type ResponseFormatJSONObject = BaseOpenAI.ResponseFormatJSONObject;
  export type ResponseFormatJSONSchema = BaseOpenAI.ResponseFormatJSONSchema;
  export type ResponseFormatText = BaseOpenAI.ResponseFormatText;
  export type ResponseFormatTextGrammar = BaseOpenAI.ResponseFormatTextGrammar;
  export type ResponseFormatTextPython = BaseOpenAI.ResponseFormatTextPython;
  export type ResponsesModel = BaseOpenAI.ResponsesModel; export import Page = BaseOpenAI.Page;
  export import CursorPage = BaseOpenAI.CursorPage;
  export import ConversationCursorPage = BaseOpenAI.ConversationCursorPage;
  export import NextCursorPage = BaseOpenAI.NextCursorPage;
  export type PageResponse<Item> = BaseOpenAI.PageResponse<Item>;
  export type CursorPageParams = BaseOpenAI.CursorPageParams;
  export type CursorPageResponse<Item> = BaseOpenAI.CursorPageResponse<Item>;
  export type ConversationCursorPageParams = BaseOpenAI.ConversationCursorPageParams;
  export type ConversationCursorPageResponse<Item> = BaseOpenAI.ConversationCursorPageResponse<Item>;
  export type NextCursorPageParams = BaseOpenAI.NextCursorPageParams;
  export type NextCursorPageResponse<Item> = BaseOpenAI.NextCursorPageResponse<Item>;
  export import Completions = BaseOpenAI.Completions; export type Completion = BaseOpenAI.Completion;
  export type CompletionChoice = BaseOpenAI.CompletionChoice;
  export type CompletionUsage = BaseOpenAI.CompletionUsage;
  export type CompletionCreateParams = BaseOpenAI.CompletionCreateParams;
  export type CompletionCreateParamsNonStreaming = BaseOpenAI.CompletionCreateParamsNonStreaming;
  export type CompletionCreateParamsStreaming = BaseOpenAI.CompletionCreateParamsStreaming;
  export import Chat = BaseOpenAI.Chat; export type ChatCompletion = BaseOpenAI.ChatCompletion;
  export type ChatCompletionAllowedToolChoice = BaseOpenAI.ChatCompletionAllowedToolChoice;
  export type ChatCompletionAssistantMessageParam = BaseOpenAI.ChatCompletionAssistantMessageParam;
  export type ChatCompletionAudio = BaseOpenAI.ChatCompletionAudio;
  export type ChatCompletionAudioParam = BaseOpenAI.ChatCompletionAudioParam;
  export type ChatCompletionChunk = BaseOpenAI.ChatCompletionChunk;
  export type ChatCompletionContentPart = BaseOpenAI.ChatCompletionContentPart;
  export type ChatCompletionContentPartImage = BaseOpenAI.ChatCompletionContentPartImage;
  export type ChatCompletionContentPartInputAudio = BaseOpenAI.ChatCompletionContentPartInputAudio;
  export type ChatCompletionContentPartRefusal = BaseOpenAI.ChatCompletionContentPartRefusal;
  export type ChatCompletionContentPartText = BaseOpenAI.ChatCompletionContentPartText;
  export type ChatCompletionCustomTool = BaseOpenAI.ChatCompletionCustomTool;
  export type ChatCompletionDeleted = BaseOpenAI.ChatCompletionDeleted;
  export type ChatCompletionDeveloperMessageParam = BaseOpenAI.ChatCompletionDeveloperMessageParam;
  export type ChatCompletionFunctionCallOption = BaseOpenAI.ChatCompletionFunctionCallOption;
  export type ChatCompletionFunctionMessageParam = BaseOpenAI.ChatCompletionFunctionMessageParam;
  export type ChatCompletionFunctionTool = BaseOpenAI.ChatCompletionFunctionTool;
  export type ChatCompletionMessage = BaseOpenAI.ChatCompletionMessage;
  export type ChatCompletionMessageCustomToolCall = BaseOpenAI.ChatCompletionMessageCustomToolCall;
  export type ChatCompletionMessageFunctionToolCall = BaseOpenAI.ChatCompletionMessageFunctionToolCall;
  export type ChatCompletionMessageParam = BaseOpenAI.ChatCompletionMessageParam;
  export type ChatCompletionMessageToolCall = BaseOpenAI.ChatCompletionMessageToolCall;
  export type ChatCompletionModality = BaseOpenAI.ChatCompletionModality;
  export type ChatCompletionNamedToolChoice = BaseOpenAI.ChatCompletionNamedToolChoice;
  export type ChatCompletionNamedToolChoiceCustom = BaseOpenAI.ChatCompletionNamedToolChoiceCustom;
  export type ChatCompletionPredictionContent = BaseOpenAI.ChatCompletionPredictionContent;
  export type ChatCompletionRole = BaseOpenAI.ChatCompletionRole;
  export type ChatCompletionStoreMessage = BaseOpenAI.ChatCompletionStoreMessage;
  export type ChatCompletionStreamOptions = BaseOpenAI.ChatCompletionStreamOptions;
  export type ChatCompletionSystemMessageParam = BaseOpenAI.ChatCompletionSystemMessageParam;
  export type ChatCompletionTokenLogprob = BaseOpenAI.ChatCompletionTokenLogprob;
  export type ChatCompletionTool = BaseOpenAI.ChatCompletionTool;
  export type ChatCompletionToolChoiceOption = BaseOpenAI.ChatCompletionToolChoiceOption;
  export type ChatCompletionToolMessageParam = BaseOpenAI.ChatCompletionToolMessageParam;
  export type ChatCompletionUserMessageParam = BaseOpenAI.ChatCompletionUserMessageParam;
  export type ChatCompletionAllowedTools = BaseOpenAI.ChatCompletionAllowedTools;
  export type ChatCompletionReasoningEffort = BaseOpenAI.ChatCompletionReasoningEffort;
  export type ChatCompletionsPage = BaseOpenAI.ChatCompletionsPage;
  export type ChatCompletionCreateParams = BaseOpenAI.ChatCompletionCreateParams;
  export type ChatCompletionCreateParamsNonStreaming = BaseOpenAI.ChatCompletionCreateParamsNonStreaming;
  export type ChatCompletionCreateParamsStreaming = BaseOpenAI.ChatCompletionCreateParamsStreaming;
  export type ChatCompletionUpdateParams = BaseOpenAI.ChatCompletionUpdateParams;
  export type ChatCompletionListParams = BaseOpenAI.ChatCompletionListParams;
  export import Embeddings = BaseOpenAI.Embeddings;
  export type CreateEmbeddingResponse = BaseOpenAI.CreateEmbeddingResponse;
  export type Embedding = BaseOpenAI.Embedding; export type EmbeddingModel = BaseOpenAI.EmbeddingModel;
  export type EmbeddingCreateParams = BaseOpenAI.EmbeddingCreateParams; export import Files = BaseOpenAI.Files;
  export type FileContent = BaseOpenAI.FileContent; export type FileDeleted = BaseOpenAI.FileDeleted;
  export type FileObject = BaseOpenAI.FileObject; export type FilePurpose = BaseOpenAI.FilePurpose;
  export type FileObjectsPage = BaseOpenAI.FileObjectsPage;
  export type FileCreateParams = BaseOpenAI.FileCreateParams; export type FileListParams = BaseOpenAI.FileListParams;
  export import Images = BaseOpenAI.Images; export type Image = BaseOpenAI.Image;
  export type ImageEditCompletedEvent = BaseOpenAI.ImageEditCompletedEvent;
  export type ImageEditPartialImageEvent = BaseOpenAI.ImageEditPartialImageEvent;
  export type ImageEditStreamEvent = BaseOpenAI.ImageEditStreamEvent;
  export type ImageGenCompletedEvent = BaseOpenAI.ImageGenCompletedEvent;
  export type ImageGenPartialImageEvent = BaseOpenAI.ImageGenPartialImageEvent;
  export type ImageGenStreamEvent = BaseOpenAI.ImageGenStreamEvent; export type ImageModel = BaseOpenAI.ImageModel;
  export type ImagesResponse = BaseOpenAI.ImagesResponse;
  export type ImageCreateVariationParams = BaseOpenAI.ImageCreateVariationParams;
  export type ImageEditParams = BaseOpenAI.ImageEditParams;
  export type ImageEditParamsNonStreaming = BaseOpenAI.ImageEditParamsNonStreaming;
  export type ImageEditParamsStreaming = BaseOpenAI.ImageEditParamsStreaming;
  export type ImageGenerateParams = BaseOpenAI.ImageGenerateParams;
  export type ImageGenerateParamsNonStreaming = BaseOpenAI.ImageGenerateParamsNonStreaming;
  export type ImageGenerateParamsStreaming = BaseOpenAI.ImageGenerateParamsStreaming;
  export import Audio = BaseOpenAI.Audio; export type AudioModel = BaseOpenAI.AudioModel;
  export type AudioResponseFormat = BaseOpenAI.AudioResponseFormat;
  export import Moderations = BaseOpenAI.Moderations; export type Moderation = BaseOpenAI.Moderation;
  export type ModerationImageURLInput = BaseOpenAI.ModerationImageURLInput;
  export type ModerationModel = BaseOpenAI.ModerationModel;
  export type ModerationMultiModalInput = BaseOpenAI.ModerationMultiModalInput;
  export type ModerationTextInput = BaseOpenAI.ModerationTextInput;
  export type ModerationCreateResponse = BaseOpenAI.ModerationCreateResponse;
  export type ModerationCreateParams = BaseOpenAI.ModerationCreateParams; export import Models = BaseOpenAI.Models;
  export type Model = BaseOpenAI.Model; export type ModelDeleted = BaseOpenAI.ModelDeleted;
  export type ModelsPage = BaseOpenAI.ModelsPage; export import FineTuning = BaseOpenAI.FineTuning;
  export import Graders = BaseOpenAI.Graders; export import VectorStores = BaseOpenAI.VectorStores;
  export type AutoFileChunkingStrategyParam = BaseOpenAI.AutoFileChunkingStrategyParam;
  export type FileChunkingStrategy = BaseOpenAI.FileChunkingStrategy;
  export type FileChunkingStrategyParam = BaseOpenAI.FileChunkingStrategyParam;
  export type OtherFileChunkingStrategyObject = BaseOpenAI.OtherFileChunkingStrategyObject;
  export type StaticFileChunkingStrategy = BaseOpenAI.StaticFileChunkingStrategy;
  export type StaticFileChunkingStrategyObject = BaseOpenAI.StaticFileChunkingStrategyObject;
  export type StaticFileChunkingStrategyObjectParam = BaseOpenAI.StaticFileChunkingStrategyObjectParam;
  export type VectorStore = BaseOpenAI.VectorStore; export type VectorStoreDeleted = BaseOpenAI.VectorStoreDeleted;
  export type VectorStoreSearchResponse = BaseOpenAI.VectorStoreSearchResponse;
  export type VectorStoresPage = BaseOpenAI.VectorStoresPage;
  export type VectorStoreSearchResponsesPage = BaseOpenAI.VectorStoreSearchResponsesPage;
  export type VectorStoreCreateParams = BaseOpenAI.VectorStoreCreateParams;
  export type VectorStoreUpdateParams = BaseOpenAI.VectorStoreUpdateParams;
  export type VectorStoreListParams = BaseOpenAI.VectorStoreListParams;
  export type VectorStoreSearchParams = BaseOpenAI.VectorStoreSearchParams;
  export import Webhooks = BaseOpenAI.Webhooks; export import Beta = BaseOpenAI.Beta;
  export import Batches = BaseOpenAI.Batches; export type Batch = BaseOpenAI.Batch;
  export type BatchError = BaseOpenAI.BatchError; export type BatchRequestCounts = BaseOpenAI.BatchRequestCounts;
  export type BatchUsage = BaseOpenAI.BatchUsage; export type BatchesPage = BaseOpenAI.BatchesPage;
  export type BatchCreateParams = BaseOpenAI.BatchCreateParams;
  export type BatchListParams = BaseOpenAI.BatchListParams; export import Uploads = BaseOpenAI.Uploads;
  export type Upload = BaseOpenAI.Upload; export type UploadCreateParams = BaseOpenAI.UploadCreateParams;
  export type UploadCompleteParams = BaseOpenAI.UploadCompleteParams; export import Admin = BaseOpenAI.Admin;
  export import Responses = BaseOpenAI.Responses; export import Realtime = BaseOpenAI.Realtime;
  export import Conversations = BaseOpenAI.Conversations; export import Evals = BaseOpenAI.Evals;
  export type EvalCustomDataSourceConfig = BaseOpenAI.EvalCustomDataSourceConfig;
  export type EvalStoredCompletionsDataSourceConfig = BaseOpenAI.EvalStoredCompletionsDataSourceConfig;
  export type EvalCreateResponse = BaseOpenAI.EvalCreateResponse;
  export type EvalRetrieveResponse = BaseOpenAI.EvalRetrieveResponse;
  export type EvalUpdateResponse = BaseOpenAI.EvalUpdateResponse;
  export type EvalListResponse = BaseOpenAI.EvalListResponse;
  export type EvalDeleteResponse = BaseOpenAI.EvalDeleteResponse;
  export type EvalListResponsesPage = BaseOpenAI.EvalListResponsesPage;
  export type EvalCreateParams = BaseOpenAI.EvalCreateParams;
  export type EvalUpdateParams = BaseOpenAI.EvalUpdateParams; export type EvalListParams = BaseOpenAI.EvalListParams;
  export import Containers = BaseOpenAI.Containers;
  export type ContainerCreateResponse = BaseOpenAI.ContainerCreateResponse;
  export type ContainerRetrieveResponse = BaseOpenAI.ContainerRetrieveResponse;
  export type ContainerListResponse = BaseOpenAI.ContainerListResponse;
  export type ContainerListResponsesPage = BaseOpenAI.ContainerListResponsesPage;
  export type ContainerCreateParams = BaseOpenAI.ContainerCreateParams;
  export type ContainerListParams = BaseOpenAI.ContainerListParams; export import Skills = BaseOpenAI.Skills;
  export type DeletedSkill = BaseOpenAI.DeletedSkill; export type Skill = BaseOpenAI.Skill;
  export type SkillList = BaseOpenAI.SkillList; export type SkillsPage = BaseOpenAI.SkillsPage;
  export type SkillCreateParams = BaseOpenAI.SkillCreateParams;
  export type SkillUpdateParams = BaseOpenAI.SkillUpdateParams;
  export type SkillListParams = BaseOpenAI.SkillListParams; export import Videos = BaseOpenAI.Videos;
  export type ImageInputReferenceParam = BaseOpenAI.ImageInputReferenceParam; export type Video = BaseOpenAI.Video;
  export type VideoCreateError = BaseOpenAI.VideoCreateError; export type VideoModel = BaseOpenAI.VideoModel;
  export type VideoSeconds = BaseOpenAI.VideoSeconds; export type VideoSize = BaseOpenAI.VideoSize;
  export type VideoDeleteResponse = BaseOpenAI.VideoDeleteResponse;
  export type VideoCreateCharacterResponse = BaseOpenAI.VideoCreateCharacterResponse;
  export type VideoGetCharacterResponse = BaseOpenAI.VideoGetCharacterResponse;
  export type VideosPage = BaseOpenAI.VideosPage; export type VideoCreateParams = BaseOpenAI.VideoCreateParams;
  export type VideoListParams = BaseOpenAI.VideoListParams;
  export type VideoCreateCharacterParams = BaseOpenAI.VideoCreateCharacterParams;
  export type VideoDownloadContentParams = BaseOpenAI.VideoDownloadContentParams;
  export type VideoEditParams = BaseOpenAI.VideoEditParams;
  export type VideoExtendParams = BaseOpenAI.VideoExtendParams;
  export type VideoRemixParams = BaseOpenAI.VideoRemixParams;
}
// END GENERATED NAMESPACE

/**
 * A `baseURL` names the proxy, except OpenAI's own (code written for `openai` often sets it): that
 * means "the default proxy", never a call signed and sent to OpenAI directly.
 */
function proxyBase(baseURL: string | null | undefined): string | undefined {
  return baseURL && !isOpenAIUrl(baseURL) ? baseURL : undefined;
}
