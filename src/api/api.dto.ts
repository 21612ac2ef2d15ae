import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Length,
  Matches,
  Max,
  Min,
  ValidateNested,
} from 'class-validator';

/**
 * The /v1 request and response shapes. The class-validator decorators validate requests (unknown
 * fields are refused); the @ApiProperty ones describe them in /v1/openapi.json. One class per
 * shape, so the document cannot drift from what is enforced.
 */

export const TEMPLATE_CATEGORIES = ['marketing', 'utility', 'authentication'] as const;

export class TemplateButtonDto {
  @ApiProperty({ enum: ['quick_reply', 'url'], description: 'the kind of button in the approved template' })
  @IsIn(['quick_reply', 'url'], { message: 'must be quick_reply or url' })
  subType!: 'quick_reply' | 'url';

  @ApiProperty({
    type: 'integer',
    minimum: 0,
    maximum: 9,
    description: "the button's position in the approved template",
  })
  @IsInt({ message: 'must be an integer' })
  @Min(0, { message: 'must be 0 or more' })
  @Max(9, { message: 'must be 9 or less' })
  index!: number;

  @ApiProperty({ description: 'quick_reply: the payload echoed back when tapped; url: the variable end of the URL' })
  @IsString({ message: 'must be a string' })
  @Length(1, 128, { message: 'must be 1 to 128 characters' })
  parameter!: string;
}

export class TemplateDto {
  @ApiProperty({ example: 'appointment_reminder', description: 'approved template name' })
  @IsString({ message: 'must be a string' })
  @Matches(/^[a-z0-9_]{1,512}$/, { message: 'must be lowercase letters, digits and underscores' })
  name!: string;

  @ApiProperty({ example: 'en', description: 'language of an approved translation: en, ar, en_US…' })
  @IsString({ message: 'must be a string' })
  @Matches(/^[a-z]{2,3}(_[A-Z]{2})?$/, { message: 'must be a language code such as en, ar or en_US' })
  language!: string;

  @ApiProperty({ enum: TEMPLATE_CATEGORIES, description: "the template's category at Meta: it decides the price" })
  @IsIn(TEMPLATE_CATEGORIES, { message: `must be one of ${TEMPLATE_CATEGORIES.join(', ')}` })
  category!: (typeof TEMPLATE_CATEGORIES)[number];

  @ApiPropertyOptional({ type: [String], example: ['Ahmed', 'Sun 10:00'], description: 'body variables, in order' })
  @IsOptional()
  @IsArray({ message: 'must be an array of strings' })
  @ArrayMaxSize(20, { message: 'must have at most 20 entries' })
  @IsString({ each: true, message: 'must contain only strings' })
  @Length(1, 1024, { each: true, message: 'entries must be 1 to 1024 characters' })
  parameters?: string[];

  @ApiPropertyOptional({ type: [String], description: 'the variable of a text header (at most one)' })
  @IsOptional()
  @IsArray({ message: 'must be an array of strings' })
  @ArrayMaxSize(1, { message: 'must have at most 1 entry' })
  @IsString({ each: true, message: 'must contain only strings' })
  @Length(1, 60, { each: true, message: 'entries must be 1 to 60 characters' })
  headerParameters?: string[];

  @ApiPropertyOptional({
    type: [TemplateButtonDto],
    description: 'the dynamic part of quick-reply (payload) and URL buttons, at most 10',
  })
  @IsOptional()
  @IsArray({ message: 'must be an array' })
  @ArrayMaxSize(10, { message: 'must have at most 10 entries' })
  // An array in place of a button becomes an array of DTOs that @ValidateNested lets through.
  @IsObject({ each: true, message: 'must contain only objects' })
  @ValidateNested({ each: true })
  @Type(() => TemplateButtonDto)
  buttons?: TemplateButtonDto[];
}

export class SendMessageDto {
  @ApiProperty({ example: '971500000001', description: 'the patient: international number, digits only' })
  @IsString({ message: 'must be a string' })
  @Matches(/^\+?[1-9]\d{6,14}$/, { message: 'must be an international phone number, digits only (e.g. 971500000001)' })
  to!: string;

  @ApiPropertyOptional({
    example: 'Your appointment is confirmed for Sun 10:00.',
    description: 'sent free-form when the 24-hour window is open',
  })
  @IsOptional()
  @IsString({ message: 'must be a string' })
  @Length(1, 4096, { message: 'must be 1 to 4096 characters' })
  text?: string;

  @ApiPropertyOptional({ type: TemplateDto, description: 'sent when the window is closed, or when no text is given' })
  @IsOptional()
  // class-transformer makes an array of DTOs of an array, and @ValidateNested passes an empty one.
  @IsObject({ message: 'must be an object' })
  @ValidateNested()
  @Type(() => TemplateDto)
  template?: TemplateDto;

  @ApiPropertyOptional({
    example: 'booking-4711',
    description: 'the same key within 24 h returns the first answer and sends nothing (or the Idempotency-Key header)',
  })
  @IsOptional()
  @IsString({ message: 'must be a string' })
  @Length(1, 255, { message: 'must be 1 to 255 characters' })
  idempotencyKey?: string;
}

export class MessageAcceptedDto {
  @ApiProperty({ description: "this message's id" })
  id!: string;

  @ApiProperty({
    enum: ['free_form', 'template'],
    description: 'how it is to be sent: free-form text in the open window, or the template',
  })
  mode!: 'free_form' | 'template';

  @ApiProperty({ example: 0.0157, description: "Meta's approximate price plus the BSP markup, USD" })
  estimatedCostUsd!: number;
}

export class CostsQueryDto {
  @ApiProperty({ example: '2026-11-01', description: 'first UTC day, inclusive' })
  @IsString({ message: 'must be a date YYYY-MM-DD' })
  @Matches(/^\d{4}-\d{2}-\d{2}$/, { message: 'must be a date YYYY-MM-DD' })
  from!: string;

  @ApiProperty({ example: '2026-11-30', description: 'last UTC day, inclusive' })
  @IsString({ message: 'must be a date YYYY-MM-DD' })
  @Matches(/^\d{4}-\d{2}-\d{2}$/, { message: 'must be a date YYYY-MM-DD' })
  to!: string;
}

export class CostTotalsDto {
  @ApiProperty({ type: 'integer', description: 'messages' })
  count!: number;

  @ApiProperty({ description: 'their price, USD' })
  usd!: number;
}

export class CostReportDto {
  @ApiProperty({ description: 'first UTC day, as asked' })
  from!: string;

  @ApiProperty({ description: 'last UTC day, as asked' })
  to!: string;

  @ApiProperty({ enum: ['USD'], description: 'the currency of every amount' })
  currency!: 'USD';

  @ApiProperty({
    type: 'object',
    additionalProperties: { $ref: '#/components/schemas/CostTotalsDto' },
    description: 'recorded at send, per category, and `total`',
  })
  estimated!: Record<string, CostTotalsDto>;

  @ApiProperty({
    type: 'object',
    additionalProperties: { $ref: '#/components/schemas/CostTotalsDto' },
    description: "from the statuses' pricing, once per message, per category, and `total`",
  })
  billed!: Record<string, CostTotalsDto>;
}

export class WindowDto {
  @ApiProperty({ description: 'whether a free-form message can be sent now' })
  open!: boolean;

  @ApiProperty({
    nullable: true,
    type: String,
    description: 'ISO time it closes (or closed); null: never opened, or a message timestamp past any date',
  })
  closesAt!: string | null;
}

export class HistoryEntryDto {
  @ApiProperty({
    enum: ['user', 'assistant', 'agent'],
    description: 'user: the patient; assistant: the bot, or POST /v1/messages; agent: a person at the desk',
  })
  role!: 'user' | 'assistant' | 'agent';

  @ApiProperty({ description: 'what was written' })
  text!: string;

  @ApiProperty({ description: 'ISO time' })
  at!: string;
}

export class ConversationDto {
  @ApiProperty({ description: "the patient's number, digits only" })
  waId!: string;

  @ApiProperty({ type: WindowDto, description: 'the 24-hour customer service window' })
  window!: WindowDto;

  @ApiProperty({ enum: ['bot', 'human'], description: 'who answers the chat: the bot, or a person at the desk' })
  handoff!: 'bot' | 'human';

  @ApiProperty({ enum: ['en', 'ar'], description: 'the language the bot answers in' })
  language!: 'en' | 'ar';

  @ApiProperty({
    type: [HistoryEntryDto],
    description: "the chat's last messages (HISTORY_MAX_MESSAGES at most), oldest first",
  })
  history!: HistoryEntryDto[];
}

export class ResumedDto {
  @ApiProperty({ description: "the patient's number, digits only" })
  waId!: string;

  @ApiProperty({ enum: ['bot'], description: 'the bot answers the chat' })
  handoff!: 'bot';

  @ApiProperty({ description: 'false when the bot already had the chat' })
  resumed!: boolean;
}

export class ErasedDto {
  @ApiProperty({ description: "the patient's number, digits only" })
  waId!: string;

  @ApiProperty({ description: 'history, state and message texts of the chat are gone; cost counts stay' })
  erased!: boolean;
}

export class ApiErrorDto {
  @ApiProperty({ example: 'invalid_body', description: 'a stable code, for programs' })
  error!: string;

  @ApiProperty({ description: 'what went wrong, for people' })
  message!: string;

  @ApiPropertyOptional({
    description: 'each bad field of the body or query, by its path (`template.name`)',
    type: 'array',
    items: {
      type: 'object',
      properties: { field: { type: 'string' }, problem: { type: 'string' } },
      required: ['field', 'problem'],
    },
  })
  fields?: { field: string; problem: string }[];
}
