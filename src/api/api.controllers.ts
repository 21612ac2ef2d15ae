import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Param,
  Post,
  Query,
  Res,
  UseFilters,
  UsePipes,
} from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiConflictResponse,
  ApiExtraModels,
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiPayloadTooLargeResponse,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiUnauthorizedResponse,
  ApiUnsupportedMediaTypeResponse,
} from '@nestjs/swagger';
import { type FastifyReply } from 'fastify';
import { CostLedger } from '../costs/cost-ledger';
import { API_BODY_LIMIT, API_ROUTE, type ApiAccess } from '../http/http-hooks';
import { ApiError } from './api-error';
import { ApiErrorFilter } from './api-error.filter';
import { ApiMessagesService } from './api-messages.service';
import { ApiValidationPipe, NoBody } from './api-validation.pipe';
import {
  ApiErrorDto,
  ConversationDto,
  CostReportDto,
  CostsQueryDto,
  CostTotalsDto,
  ErasedDto,
  MessageAcceptedDto,
  ResumedDto,
  SendMessageDto,
} from './api.dto';
import { ConversationsService } from './conversations.service';

/** Every handler: the API key is checked before the body is read (src/http/http-hooks.ts). */
const KEYED = { [API_ROUTE]: 'key' satisfies ApiAccess };

/** The longest /v1/costs range: the ledger keeps 13 months. */
const MAX_COST_DAYS = 400;

const UNAUTHORIZED = '`unauthorized`: no valid `Authorization: Bearer` key; answered before the body is read';
const UNAVAILABLE = '`unavailable`: Redis did not answer in time; retry';

@ApiTags('messages')
@ApiBearerAuth()
@ApiUnauthorizedResponse({ type: ApiErrorDto, description: UNAUTHORIZED })
@Controller('v1/messages')
@UseFilters(ApiErrorFilter)
@UsePipes(ApiValidationPipe)
export class MessagesController {
  constructor(private readonly messages: ApiMessagesService) {}

  @Post()
  @RouteConfig(KEYED)
  @ApiOperation({
    summary: 'Send a business-initiated message to a patient',
    description:
      'Free-form `text` while the 24-hour window is open, else the `template`; at least one of the two. ' +
      "Queued, not sent: the worker sends it in the chat's turn. " +
      'The same idempotency key within 24 h returns the first answer, status and body, and sends nothing.',
  })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'the same as `idempotencyKey` in the body (not two different keys)',
  })
  @ApiAcceptedResponse({ type: MessageAcceptedDto, description: 'queued on the chat; sent by the worker in turn' })
  @ApiBadRequestResponse({ type: ApiErrorDto, description: '`invalid_body`: every bad field named in `fields`' })
  @ApiConflictResponse({
    type: ApiErrorDto,
    description: '`window_closed`: the window is closed and no template given',
  })
  @ApiPayloadTooLargeResponse({
    type: ApiErrorDto,
    description: `\`body_too_large\`: over ${API_BODY_LIMIT / 1024} KB`,
  })
  @ApiUnsupportedMediaTypeResponse({
    type: ApiErrorDto,
    description: '`unsupported_media_type`: the body is not `application/json`',
  })
  @ApiServiceUnavailableResponse({ type: ApiErrorDto, description: `${UNAVAILABLE} with the same idempotency key` })
  async send(
    @Body() body: SendMessageDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, unknown>> {
    const answer = await this.messages.send(body, idempotencyKey);
    if (answer.replayed) void reply.header('idempotent-replayed', 'true');
    void reply.status(answer.status);
    return answer.body;
  }
}

@ApiTags('conversations')
@ApiBearerAuth()
@ApiParam({
  name: 'waId',
  description: "the patient's WhatsApp number: international, digits only (a leading `+` is tolerated)",
  example: '971500000001',
})
@ApiUnauthorizedResponse({ type: ApiErrorDto, description: UNAUTHORIZED })
@ApiNotFoundResponse({ type: ApiErrorDto, description: '`not_found`: nothing is kept for this number' })
@ApiServiceUnavailableResponse({ type: ApiErrorDto, description: UNAVAILABLE })
@Controller('v1/conversations')
@UseFilters(ApiErrorFilter)
export class ConversationsController {
  constructor(private readonly conversations: ConversationsService) {}

  @Get(':waId')
  @RouteConfig(KEYED)
  @ApiOperation({ summary: 'Read one chat: its window, who answers it, its language and history' })
  @ApiOkResponse({ type: ConversationDto, description: 'the chat' })
  @ApiBadRequestResponse({ type: ApiErrorDto, description: '`invalid_path`: waId is not an international number' })
  show(@Param('waId') waId: string): Promise<ConversationDto> {
    return this.conversations.show(waId);
  }

  @Post(':waId/resume')
  @RouteConfig(KEYED)
  @HttpCode(200)
  @ApiOperation({
    summary: 'Hand a paused chat back to the bot now',
    description: 'As resolving its conversation in Chatwoot would. Takes no body: none, or `{}`.',
  })
  @ApiOkResponse({ type: ResumedDto, description: 'the bot answers this chat again' })
  @ApiBadRequestResponse({
    type: ApiErrorDto,
    description: '`invalid_path`: waId is not an international number; `invalid_body`: a body with any field',
  })
  resume(@Param('waId') waId: string, @NoBody() _body: undefined): Promise<ResumedDto> {
    return this.conversations.resume(waId);
  }

  @Delete(':waId')
  @RouteConfig(KEYED)
  @ApiOperation({
    summary: 'Erase one chat (a data-subject request)',
    description:
      'Its history, state, hand-over record, running cost, waiting messages and dead letters. ' +
      'Outbound records and cost-ledger counts, which hold no text, stay. Takes no body: none, or `{}`.',
  })
  @ApiOkResponse({ type: ErasedDto, description: 'the chat is erased' })
  @ApiBadRequestResponse({
    type: ApiErrorDto,
    description: '`invalid_path`: waId is not an international number; `invalid_body`: a body with any field',
  })
  erase(@Param('waId') waId: string, @NoBody() _body: undefined): Promise<ErasedDto> {
    return this.conversations.erase(waId);
  }
}

@ApiTags('costs')
@ApiBearerAuth()
@ApiExtraModels(CostTotalsDto)
@ApiUnauthorizedResponse({ type: ApiErrorDto, description: UNAUTHORIZED })
@ApiServiceUnavailableResponse({ type: ApiErrorDto, description: UNAVAILABLE })
@Controller('v1/costs')
@UseFilters(ApiErrorFilter)
@UsePipes(ApiValidationPipe)
export class CostsController {
  constructor(private readonly ledger: CostLedger) {}

  @Get()
  @RouteConfig(KEYED)
  @ApiOperation({
    summary: 'The cost ledger over a range of UTC days',
    description: `Both days inclusive, at most ${MAX_COST_DAYS} days.`,
  })
  @ApiOkResponse({ type: CostReportDto, description: 'estimated and billed counts and USD, per category and in total' })
  @ApiBadRequestResponse({
    type: ApiErrorDto,
    description:
      '`invalid_query`: `from` or `to` missing or not a calendar date YYYY-MM-DD, `to` before `from`, ' +
      `a range over ${MAX_COST_DAYS} days, or an unknown parameter`,
  })
  async report(@Query() query: CostsQueryDto): Promise<CostReportDto> {
    const from = Date.parse(`${query.from}T00:00:00Z`);
    const to = Date.parse(`${query.to}T00:00:00Z`);
    const problems = [];
    if (!validDay(query.from, from)) problems.push({ field: 'from', problem: 'is not a calendar date' });
    if (!validDay(query.to, to)) problems.push({ field: 'to', problem: 'is not a calendar date' });
    if (problems.length === 0 && from > to) problems.push({ field: 'to', problem: 'must not be before from' });
    if (problems.length === 0 && (to - from) / 86400000 + 1 > MAX_COST_DAYS) {
      problems.push({ field: 'to', problem: `the range must be at most ${MAX_COST_DAYS} days` });
    }
    if (problems.length > 0) throw ApiError.invalid('invalid_query', problems);
    try {
      return await this.ledger.report(query.from, query.to);
    } catch (err) {
      if (err instanceof RangeError) throw ApiError.invalid('invalid_query', [{ field: 'to', problem: err.message }]);
      throw new ApiError(503, { error: 'unavailable', message: 'storage unavailable; retry' });
    }
  }
}

/** 2026-02-30 parses (to March 2): a real day formats back to itself. */
function validDay(day: string, ms: number): boolean {
  return Number.isFinite(ms) && new Date(ms).toISOString().slice(0, 10) === day;
}
