import { Transform } from 'class-transformer';
import { IsOptional, IsString, Length, Matches, MaxLength } from 'class-validator';

/**
 * What the demo clinic API takes, validated like /v1 (ApiValidationPipe): unknown fields refused,
 * every bad field named. The limits are those of config/examples/actions.clinic.json, the catalog
 * this API implements.
 */

const trimmed = ({ value }: { value: unknown }): unknown => (typeof value === 'string' ? value.trim() : value);

export class SlotsQueryDto {
  @IsString({ message: 'must be a string' })
  @Matches(/^\d{4}-\d{2}-\d{2}$/, { message: 'must be a day, YYYY-MM-DD' })
  date!: string;

  /** Accepted for the catalog's sake; every doctor here does everything. */
  @IsOptional()
  @IsString({ message: 'must be a string' })
  @MaxLength(100, { message: 'must be at most 100 characters' })
  service?: string;

  @IsOptional()
  @Transform(trimmed)
  @IsString({ message: 'must be a string' })
  @MaxLength(100, { message: 'must be at most 100 characters' })
  doctor?: string;
}

export class BookDto {
  @Transform(trimmed)
  @IsString({ message: 'must be a string' })
  @Length(1, 64, { message: 'must be 1 to 64 characters' })
  slotId!: string;

  @Transform(trimmed)
  @IsString({ message: 'must be a string' })
  @Length(2, 100, { message: 'must be 2 to 100 characters' })
  patientName!: string;

  @IsOptional()
  @Transform(trimmed)
  @IsString({ message: 'must be a string' })
  @MaxLength(200, { message: 'must be at most 200 characters' })
  reason?: string | null;
}

export class RescheduleDto {
  @Transform(trimmed)
  @IsString({ message: 'must be a string' })
  @Length(1, 64, { message: 'must be 1 to 64 characters' })
  slotId!: string;
}

export class AppointmentsQueryDto {
  @Transform(trimmed)
  @IsString({ message: 'must be a string' })
  @Length(2, 100, { message: 'must be 2 to 100 characters' })
  patientName!: string;
}
