import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  Injectable,
  Param,
  type PipeTransform,
  Post,
  Put,
  Query,
  Res,
  UseFilters,
} from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { type FastifyReply } from 'fastify';
import { ApiError } from '../api/api-error';
import { ApiErrorFilter } from '../api/api-error.filter';
import { ApiValidationPipe } from '../api/api-validation.pipe';
import { RAW_BODY } from '../http/http-hooks';
import { parseUntrustedJson } from '../webhook/webhook-payload';
import { AppointmentsQueryDto, BookDto, RescheduleDto, SlotsQueryDto } from './demo-clinic.dto';
import { type ClinicAnswer, type DemoBooking, DemoClinic, type FreeSlots } from './demo-clinic.service';
import { sandboxHeaders } from './sandbox-assets';

/**
 * The body of a RAW_BODY route, parsed here: a body that is not JSON gets the `{ error, message }`
 * shape, where the app-wide parser's error would reach the client as Fastify's own.
 */
@Injectable()
class JsonBody implements PipeTransform {
  transform(value: unknown): unknown {
    if (typeof value === 'string') {
      throw new ApiError(415, { error: 'unsupported_media_type', message: 'content type must be application/json' });
    }
    if (!Buffer.isBuffer(value)) return value;
    if (value.length === 0) return undefined;
    try {
      return parseUntrustedJson(value);
    } catch {
      throw ApiError.invalid('invalid_body', [{ field: '(body)', problem: 'is not valid JSON' }]);
    }
  }
}

/**
 * The sandbox's demo clinic API (docs/actions.md): what config/examples/actions.clinic.json
 * declares, so the sandbox books through exactly the actions a real clinic would. Mounted only
 * when AppConfig.demoClinic, which is what points CLINIC_API_BASE_URL here. Errors have the /v1
 * shape `{ error, message, fields? }`. No authentication, like the rest of /sandbox: another site's
 * page cannot write here either, since POST and PUT take JSON bodies only (a form cannot send one)
 * and a cross-site PUT or DELETE needs a CORS preflight this API never grants.
 */
@Controller('sandbox/clinic')
@UseFilters(ApiErrorFilter)
export class DemoClinicController {
  constructor(private readonly clinic: DemoClinic) {}

  @Get('slots')
  async slots(
    @Query(ApiValidationPipe) query: SlotsQueryDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<FreeSlots> {
    sandboxHeaders(reply);
    return this.clinic.slots(query.date, query.doctor || undefined);
  }

  @Post('bookings')
  @RouteConfig({ [RAW_BODY]: true })
  async book(
    @Body(JsonBody, ApiValidationPipe) body: BookDto,
    @Headers('idempotency-key') key: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, unknown>> {
    return send(reply, await this.clinic.book(body, key));
  }

  @Put('bookings/:bookingId')
  @RouteConfig({ [RAW_BODY]: true })
  async reschedule(
    @Param('bookingId') bookingId: string,
    @Body(JsonBody, ApiValidationPipe) body: RescheduleDto,
    @Headers('idempotency-key') key: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, unknown>> {
    return send(reply, await this.clinic.reschedule(bookingId, body, key));
  }

  @Delete('bookings/:bookingId')
  async cancel(
    @Param('bookingId') bookingId: string,
    @Headers('idempotency-key') key: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, unknown>> {
    return send(reply, await this.clinic.cancel(bookingId, key));
  }

  @Get('appointments')
  async appointments(
    @Query(ApiValidationPipe) query: AppointmentsQueryDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<{ appointments: DemoBooking[] }> {
    sandboxHeaders(reply);
    return { appointments: await this.clinic.appointments(query.patientName) };
  }
}

function send(reply: FastifyReply, answer: ClinicAnswer): Record<string, unknown> {
  sandboxHeaders(reply);
  if (answer.replayed) void reply.header('idempotent-replayed', 'true');
  void reply.status(answer.status);
  return answer.body;
}
