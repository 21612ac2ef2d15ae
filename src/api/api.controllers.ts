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
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { type FastifyReply } from 'fastify';
import { CostLedger } from '../costs/cost-ledger';
import { API_ROUTE, type ApiAccess } from '../http/http-hooks';
import { ApiError } from './api-error';
import { ApiErrorFilter } from './api-error.filter';
import { ApiMessagesService } from './api-messages.service';
import { ApiValidationPipe, NoBody } from './api-validation.pipe';
import {
  ApiErrorDto,
  ConversationDto,
  CostReportDto,
  CostsQueryDto,
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

@ApiTags('messages')
@ApiBearerAuth()
@ApiUnauthorizedResponse({ type: ApiErrorDto })
@Controller('v1/messages')
@UseFilters(ApiErrorFilter)
@UsePipes(ApiValidationPipe)
export class MessagesController {
  constructor(private readonly messages: ApiMessagesService) {}

  @Post()
  @RouteConfig(KEYED)
  @ApiHeader({ name: 'Idempotency-Key', required: false, description: 'same as idempotencyKey in the body' })
  @ApiAcceptedResponse({ type: MessageAcceptedDto, description: 'queued on the chat; sent by the worker in turn' })
  @ApiBadRequestResponse({ type: ApiErrorDto, description: 'every bad field named in `fields`' })
  @ApiConflictResponse({
    type: ApiErrorDto,
    description: '`window_closed`: the window is closed and no template given',
  })
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
@ApiUnauthorizedResponse({ type: ApiErrorDto })
@ApiNotFoundResponse({ type: ApiErrorDto, description: 'no such chat' })
@Controller('v1/conversations')
@UseFilters(ApiErrorFilter)
export class ConversationsController {
  constructor(private readonly conversations: ConversationsService) {}

  @Get(':waId')
  @RouteConfig(KEYED)
  @ApiOkResponse({ type: ConversationDto })
  show(@Param('waId') waId: string): Promise<ConversationDto> {
    return this.conversations.show(waId);
  }

  @Post(':waId/resume')
  @RouteConfig(KEYED)
  @HttpCode(200)
  @ApiOkResponse({ type: ResumedDto, description: 'the bot answers this chat again' })
  @ApiBadRequestResponse({ type: ApiErrorDto, description: 'a body with any field' })
  resume(@Param('waId') waId: string, @NoBody() _body: undefined): Promise<ResumedDto> {
    return this.conversations.resume(waId);
  }

  @Delete(':waId')
  @RouteConfig(KEYED)
  @ApiOkResponse({ type: ErasedDto, description: 'a data-subject erasure' })
  @ApiBadRequestResponse({ type: ApiErrorDto, description: 'a body with any field' })
  erase(@Param('waId') waId: string, @NoBody() _body: undefined): Promise<ErasedDto> {
    return this.conversations.erase(waId);
  }
}

@ApiTags('costs')
@ApiBearerAuth()
@ApiUnauthorizedResponse({ type: ApiErrorDto })
@Controller('v1/costs')
@UseFilters(ApiErrorFilter)
@UsePipes(ApiValidationPipe)
export class CostsController {
  constructor(private readonly ledger: CostLedger) {}

  @Get()
  @RouteConfig(KEYED)
  @ApiOkResponse({ type: CostReportDto })
  @ApiBadRequestResponse({ type: ApiErrorDto })
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
