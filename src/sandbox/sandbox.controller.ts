import { Body, Controller, Get, Headers, HttpCode, HttpException, Post, Query, Res } from '@nestjs/common';
import { type FastifyReply } from 'fastify';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { AppLogger } from '../logging/app-logger';
import { JSON_TYPE } from '../webhook/webhook-route.hooks';
import { SandboxAssets, type SandboxAsset, sandboxHeaders } from './sandbox-assets';
import { type SandboxChatState, SandboxState } from './sandbox-state.service';
import { SandboxStreams } from './sandbox-streams.service';

/** A patient's number: international, digits only (the page strips `+` and spaces). */
const WA_ID = /^[1-9]\d{6,14}$/;
/** Meta's display number of the sandbox business, as in the README's demo payloads. */
const DISPLAY_PHONE_NUMBER = '15550001111';

function waIdOf(value: unknown): string {
  if (typeof value !== 'string' || !WA_ID.test(value)) {
    throw new HttpException(
      { error: 'invalid_query', message: 'waId: must be an international phone number, digits only' },
      400,
    );
  }
  return value;
}

/**
 * GET /sandbox: the page that plays the patient's phone, its files, and the small JSON and event
 * endpoints it reads. It posts the patient's side to POST /webhook itself, like Meta.
 */
@Controller('sandbox')
export class SandboxController {
  private readonly logger: Logger;

  constructor(
    private readonly assets: SandboxAssets,
    private readonly state: SandboxState,
    private readonly streams: SandboxStreams,
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('sandbox');
  }

  @Get()
  page(@Res() reply: FastifyReply): void {
    this.asset(reply, 'index.html');
  }

  @Get('app.js')
  script(@Res() reply: FastifyReply): void {
    this.asset(reply, 'app.js');
  }

  @Get('app.css')
  style(@Res() reply: FastifyReply): void {
    this.asset(reply, 'app.css');
  }

  @Get('icon.svg')
  icon(@Res() reply: FastifyReply): void {
    this.asset(reply, 'icon.svg');
  }

  /** What the page needs to post webhooks as Meta would for this deployment. */
  @Get('api/config')
  settings(@Res({ passthrough: true }) reply: FastifyReply): Record<string, unknown> {
    sandboxHeaders(reply);
    return {
      phoneNumberId: this.config.phoneNumberId,
      displayPhoneNumber: DISPLAY_PHONE_NUMBER,
      clinicName: this.config.env.CLINIC_NAME,
    };
  }

  @Get('api/state')
  async chatState(
    @Query('waId') waId: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<SandboxChatState> {
    sandboxHeaders(reply);
    const number = waIdOf(waId);
    return this.guard(this.state.read(number));
  }

  /** A human "resolves" the chat: the bot answers it again from the next message. */
  @Post('api/resolve')
  @HttpCode(200)
  async resolve(
    @Body() body: unknown,
    @Headers('content-type') contentType: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<{ waId: string; resumed: boolean }> {
    sandboxHeaders(reply);
    // Another site's form can post text/plain to 127.0.0.1, but only the page's own script can send JSON.
    if (!JSON_TYPE.test(contentType ?? '')) {
      throw new HttpException(
        { error: 'unsupported_media_type', message: 'content type must be application/json' },
        415,
      );
    }
    const waId = waIdOf((body as { waId?: unknown } | undefined)?.waId);
    return { waId, resumed: await this.guard(this.state.resume(waId)) };
  }

  @Get('api/events')
  async events(@Query('waId') waId: unknown, @Res() reply: FastifyReply): Promise<void> {
    const number = waIdOf(waId);
    await this.streams.serve(reply, number);
  }

  private asset(reply: FastifyReply, name: SandboxAsset): void {
    this.assets.send(reply, name);
  }

  private async guard<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (err) {
      this.logger.error({ err }, 'redis did not answer; 503');
      throw new HttpException({ error: 'unavailable', message: 'storage unavailable; retry' }, 503);
    }
  }
}
