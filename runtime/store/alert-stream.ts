// DynamoDB Streams records of the ledger table, as Lambda hands them to the notifier, and the budget
// alert a record carries. https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_StreamRecord.html
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { BudgetAlert } from '../core/alerts.ts';
import { ALERT_CARRIER, fromAlertCarrier, USAGE_PREFIX } from './dynamo-codec.ts';

/** One record of a DynamoDB Streams event (the images are DynamoDB JSON, AttributeValue maps). */
export interface StreamRecord {
  eventID?: string;
  eventName?: 'INSERT' | 'MODIFY' | 'REMOVE';
  eventVersion?: string;
  eventSource?: string;
  awsRegion?: string;
  eventSourceARN?: string;
  dynamodb?: {
    ApproximateCreationDateTime?: number;
    Keys?: Record<string, AttributeValue>;
    NewImage?: Record<string, AttributeValue>;
    OldImage?: Record<string, AttributeValue>;
    SequenceNumber?: string;
    SizeBytes?: number;
    StreamViewType?: string;
  };
}

export interface StreamEvent {
  Records?: StreamRecord[];
}

/** The answer of a stream handler with ReportBatchItemFailures: the records to retry, by sequence number. */
export interface BatchResponse {
  batchItemFailures: { itemIdentifier: string }[];
}

/**
 * The alert a record announces: a MODIFY of a usage item whose new image has the carrier (the
 * mark's write set it; every other write removes it). Undefined for anything else.
 */
export function alertOfRecord(record: StreamRecord): BudgetAlert | undefined {
  if (record.eventName !== 'MODIFY' && record.eventName !== 'INSERT') return undefined;
  const image = record.dynamodb?.NewImage;
  if (!image?.sk?.S?.startsWith(USAGE_PREFIX)) return undefined;
  return fromAlertCarrier(image[ALERT_CARRIER]);
}
