// The one table of Riffle's error codes. Every error a node returns, and every typed error the SDK
// raises, is a row here: a stable name, a numeric code, the gRPC status it travels as, whether a
// client may retry it, and a default message. Numeric codes are Kafka's protocol error codes where
// Kafka has the same error (so a future Kafka-wire listener can pass them through unchanged); the
// Kinesis-only errors take codes from 1000 up and carry the exception name Kinesis clients expect.
import * as grpc from '@grpc/grpc-js';

export interface ErrorSpec {
  readonly code: number;
  readonly status: grpc.status;
  readonly retriable: boolean;
  readonly message: string;
  /** The name a Kinesis client sees (`__type` in Kinesis' JSON errors), where one exists. */
  readonly kinesisName?: string;
}

const S = grpc.status;

export const ERRORS = {
  UNKNOWN_SERVER_ERROR: { code: -1, status: S.INTERNAL, retriable: false, message: 'The server experienced an unexpected error when processing the request.', kinesisName: 'InternalFailure' },
  NONE: { code: 0, status: S.OK, retriable: false, message: 'No error.' },
  OFFSET_OUT_OF_RANGE: { code: 1, status: S.OUT_OF_RANGE, retriable: false, message: 'The requested offset is not within the range of offsets maintained by the server.' },
  CORRUPT_MESSAGE: { code: 2, status: S.INVALID_ARGUMENT, retriable: true, message: 'The record batch failed its CRC check, has an invalid size or is otherwise corrupt.' },
  UNKNOWN_TOPIC_OR_PARTITION: { code: 3, status: S.NOT_FOUND, retriable: true, message: 'This server does not host this topic-partition.', kinesisName: 'ResourceNotFoundException' },
  INVALID_FETCH_SIZE: { code: 4, status: S.INVALID_ARGUMENT, retriable: false, message: 'The requested fetch size is invalid.' },
  LEADER_NOT_AVAILABLE: { code: 5, status: S.UNAVAILABLE, retriable: true, message: 'There is no leader for this topic-partition as we are in the middle of a leadership election.' },
  NOT_LEADER_OR_FOLLOWER: { code: 6, status: S.FAILED_PRECONDITION, retriable: true, message: 'This server is not the leader or a follower for that topic-partition.' },
  REQUEST_TIMED_OUT: { code: 7, status: S.DEADLINE_EXCEEDED, retriable: true, message: 'The request timed out.' },
  BROKER_NOT_AVAILABLE: { code: 8, status: S.UNAVAILABLE, retriable: true, message: 'The broker is not available.' },
  MESSAGE_TOO_LARGE: { code: 10, status: S.INVALID_ARGUMENT, retriable: false, message: 'The request included a record batch larger than the maximum the server accepts.' },
  OFFSET_METADATA_TOO_LARGE: { code: 12, status: S.INVALID_ARGUMENT, retriable: false, message: 'The metadata field of the offset request was too large.' },
  NETWORK_EXCEPTION: { code: 13, status: S.UNAVAILABLE, retriable: true, message: 'The server disconnected before a response was received.' },
  COORDINATOR_LOAD_IN_PROGRESS: { code: 14, status: S.UNAVAILABLE, retriable: true, message: "The coordinator is loading and hence can't process requests." },
  COORDINATOR_NOT_AVAILABLE: { code: 15, status: S.UNAVAILABLE, retriable: true, message: 'The coordinator is not available.' },
  NOT_COORDINATOR: { code: 16, status: S.FAILED_PRECONDITION, retriable: true, message: 'This is not the correct coordinator.' },
  INVALID_TOPIC_EXCEPTION: { code: 17, status: S.INVALID_ARGUMENT, retriable: false, message: 'The request attempted to perform an operation on an invalid topic.' },
  RECORD_LIST_TOO_LARGE: { code: 18, status: S.INVALID_ARGUMENT, retriable: false, message: 'The request included record batches larger than the maximum request size.' },
  NOT_ENOUGH_REPLICAS: { code: 19, status: S.UNAVAILABLE, retriable: true, message: 'Messages are rejected since there are fewer in-sync replicas than required.' },
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: { code: 20, status: S.UNAVAILABLE, retriable: true, message: 'Messages are written to the log, but to fewer in-sync replicas than required.' },
  INVALID_REQUIRED_ACKS: { code: 21, status: S.INVALID_ARGUMENT, retriable: false, message: 'Produce request specified an invalid value for required acks.' },
  ILLEGAL_GENERATION: { code: 22, status: S.FAILED_PRECONDITION, retriable: false, message: 'Specified group generation id is not valid.' },
  INVALID_GROUP_ID: { code: 24, status: S.INVALID_ARGUMENT, retriable: false, message: 'The configured groupId is invalid.' },
  UNKNOWN_MEMBER_ID: { code: 25, status: S.NOT_FOUND, retriable: false, message: 'The coordinator is not aware of this member.' },
  INVALID_SESSION_TIMEOUT: { code: 26, status: S.INVALID_ARGUMENT, retriable: false, message: 'The session timeout is not within the range allowed by the broker.' },
  INVALID_COMMIT_OFFSET_SIZE: { code: 28, status: S.INVALID_ARGUMENT, retriable: false, message: 'The committing offset data size is not valid.' },
  INVALID_TIMESTAMP: { code: 32, status: S.INVALID_ARGUMENT, retriable: false, message: 'The timestamp of the record is out of the acceptable range.' },
  UNSUPPORTED_VERSION: { code: 35, status: S.UNIMPLEMENTED, retriable: false, message: 'The version of the API is not supported.' },
  TOPIC_ALREADY_EXISTS: { code: 36, status: S.ALREADY_EXISTS, retriable: false, message: 'Topic with this name already exists.', kinesisName: 'ResourceInUseException' },
  INVALID_PARTITIONS: { code: 37, status: S.INVALID_ARGUMENT, retriable: false, message: 'Number of partitions is below 1 or above the maximum.' },
  INVALID_REPLICATION_FACTOR: { code: 38, status: S.INVALID_ARGUMENT, retriable: false, message: 'Replication factor is below 1 or larger than the number of available brokers.' },
  INVALID_REPLICA_ASSIGNMENT: { code: 39, status: S.INVALID_ARGUMENT, retriable: false, message: 'Replica assignment is invalid.' },
  INVALID_CONFIG: { code: 40, status: S.INVALID_ARGUMENT, retriable: false, message: 'Configuration is invalid.' },
  NOT_CONTROLLER: { code: 41, status: S.FAILED_PRECONDITION, retriable: true, message: 'This is not the correct controller for this cluster.' },
  INVALID_REQUEST: { code: 42, status: S.INVALID_ARGUMENT, retriable: false, message: 'The request is malformed or violates the protocol.', kinesisName: 'InvalidArgumentException' },
  POLICY_VIOLATION: { code: 44, status: S.FAILED_PRECONDITION, retriable: false, message: 'Request parameters do not satisfy the configured policy.' },
  OUT_OF_ORDER_SEQUENCE_NUMBER: { code: 45, status: S.FAILED_PRECONDITION, retriable: false, message: 'The broker received an out of order sequence number.' },
  DUPLICATE_SEQUENCE_NUMBER: { code: 46, status: S.ALREADY_EXISTS, retriable: false, message: 'The broker received a duplicate sequence number.' },
  INVALID_PRODUCER_EPOCH: { code: 47, status: S.FAILED_PRECONDITION, retriable: false, message: "Producer attempted to produce with an old epoch." },
  KAFKA_STORAGE_ERROR: { code: 56, status: S.UNAVAILABLE, retriable: true, message: 'Disk error when trying to access the log file on disk.' },
  UNKNOWN_PRODUCER_ID: { code: 59, status: S.FAILED_PRECONDITION, retriable: false, message: 'The broker could not locate the producer metadata associated with the producer id.' },
  NON_EMPTY_GROUP: { code: 68, status: S.FAILED_PRECONDITION, retriable: false, message: 'The group is not empty.' },
  GROUP_ID_NOT_FOUND: { code: 69, status: S.NOT_FOUND, retriable: false, message: 'The group id does not exist.' },
  FENCED_LEADER_EPOCH: { code: 74, status: S.FAILED_PRECONDITION, retriable: true, message: 'The leader epoch in the request is older than the epoch on the broker.' },
  UNKNOWN_LEADER_EPOCH: { code: 75, status: S.FAILED_PRECONDITION, retriable: true, message: 'The leader epoch in the request is newer than the epoch on the broker.' },
  STALE_BROKER_EPOCH: { code: 77, status: S.FAILED_PRECONDITION, retriable: false, message: 'Broker epoch has changed: the broker must register again.' },
  OFFSET_NOT_AVAILABLE: { code: 78, status: S.UNAVAILABLE, retriable: true, message: 'The leader high watermark has not caught up from a recent leader election.' },
  INVALID_RECORD: { code: 87, status: S.INVALID_ARGUMENT, retriable: false, message: 'This record has failed the validation on the broker and hence is rejected.' },
  THROTTLING_QUOTA_EXCEEDED: { code: 89, status: S.RESOURCE_EXHAUSTED, retriable: true, message: 'The throttling quota has been exceeded.' },
  INVALID_UPDATE_VERSION: { code: 95, status: S.FAILED_PRECONDITION, retriable: true, message: 'The partition epoch in the request is stale: refresh metadata and retry.' },
  INELIGIBLE_REPLICA: { code: 107, status: S.FAILED_PRECONDITION, retriable: true, message: 'The new ISR contains a replica that is fenced or shutting down.' },
  FENCED_MEMBER_EPOCH: { code: 110, status: S.FAILED_PRECONDITION, retriable: false, message: 'The member epoch is fenced by the group coordinator.' },
  UNRELEASED_INSTANCE_ID: { code: 111, status: S.FAILED_PRECONDITION, retriable: false, message: 'The instance id is still used by another member in the consumer group.' },
  UNSUPPORTED_ASSIGNOR: { code: 112, status: S.INVALID_ARGUMENT, retriable: false, message: 'The assignor or its version range is not supported by the consumer group.' },
  STALE_MEMBER_EPOCH: { code: 113, status: S.FAILED_PRECONDITION, retriable: false, message: 'The member epoch is stale.' },
  // Kinesis-only errors.
  RESOURCE_NOT_FOUND: { code: 1000, status: S.NOT_FOUND, retriable: false, message: 'The requested resource could not be found.', kinesisName: 'ResourceNotFoundException' },
  RESOURCE_IN_USE: { code: 1001, status: S.FAILED_PRECONDITION, retriable: false, message: 'The resource is not available for this operation.', kinesisName: 'ResourceInUseException' },
  INVALID_ARGUMENT: { code: 1002, status: S.INVALID_ARGUMENT, retriable: false, message: 'A specified parameter exceeds its restrictions, is not supported, or cannot be used.', kinesisName: 'InvalidArgumentException' },
  LIMIT_EXCEEDED: { code: 1003, status: S.RESOURCE_EXHAUSTED, retriable: true, message: 'The requested resource exceeds the maximum number allowed, or too many requests are in progress.', kinesisName: 'LimitExceededException' },
  PROVISIONED_THROUGHPUT_EXCEEDED: { code: 1004, status: S.RESOURCE_EXHAUSTED, retriable: true, message: 'The request rate for the stream is too high, or the requested data is too large for the available throughput.', kinesisName: 'ProvisionedThroughputExceededException' },
  EXPIRED_ITERATOR: { code: 1005, status: S.INVALID_ARGUMENT, retriable: false, message: 'The provided iterator exceeds the maximum age allowed.', kinesisName: 'ExpiredIteratorException' },
  SHARD_CLOSED: { code: 1007, status: S.FAILED_PRECONDITION, retriable: false, message: 'The shard (partition) was closed by a resharding and takes no more writes; write to its child shards.', kinesisName: 'InvalidArgumentException' },
  LEASE_NOT_HELD: { code: 1008, status: S.FAILED_PRECONDITION, retriable: false, message: 'The worker does not hold the lease of this shard at this epoch (it expired or moved to another worker): stop processing the shard.' },
  EXPIRED_NEXT_TOKEN: { code: 1006, status: S.INVALID_ARGUMENT, retriable: false, message: 'The pagination token passed to the operation is expired.', kinesisName: 'ExpiredNextTokenException' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorName = keyof typeof ERRORS;

const BY_CODE = new Map<number, ErrorName>(
  (Object.keys(ERRORS) as ErrorName[]).map((name) => [ERRORS[name].code, name]),
);

export function errorNameOf(code: number): ErrorName {
  return BY_CODE.get(code) ?? 'UNKNOWN_SERVER_ERROR';
}

/** Metadata keys that carry the typed error beside the gRPC status. */
export const ERROR_NAME_METADATA_KEY = 'riffle-error';
export const ERROR_CODE_METADATA_KEY = 'riffle-error-code';
export const ERROR_RETRIABLE_METADATA_KEY = 'riffle-error-retriable';
export const LEADER_HINT_METADATA_KEY = 'riffle-leader-hint';
/** The Kinesis exception name of the error, where it has one (ResourceNotFoundException, ...). */
export const KINESIS_ERROR_METADATA_KEY = 'riffle-kinesis-error';

/** The Kinesis exception name a client of the Kinesis API sees for an error. */
export function kinesisNameOf(name: ErrorName): string {
  return (ERRORS[name] as ErrorSpec).kinesisName ?? 'InternalFailure';
}

/** A typed Riffle error, raised by servers and by the SDK alike. */
export class RiffleError extends Error {
  override readonly name = 'RiffleError';
  readonly errorName: ErrorName;
  readonly code: number;
  readonly retriable: boolean;
  readonly status: grpc.status;
  /** Where the right node is, when the error says this was the wrong one (e.g. 'host:port'). */
  readonly leaderHint?: string;

  constructor(errorName: ErrorName, message?: string, options?: { leaderHint?: string; cause?: unknown }) {
    const spec = ERRORS[errorName];
    super(message ?? spec.message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.errorName = errorName;
    this.code = spec.code;
    this.retriable = spec.retriable;
    this.status = spec.status;
    this.leaderHint = options?.leaderHint;
  }

  /** The gRPC error a server hands to a unary callback or emits on a stream. */
  toServiceError(): Partial<grpc.ServiceError> {
    const metadata = new grpc.Metadata();
    metadata.set(ERROR_NAME_METADATA_KEY, this.errorName);
    metadata.set(ERROR_CODE_METADATA_KEY, String(this.code));
    metadata.set(ERROR_RETRIABLE_METADATA_KEY, String(this.retriable));
    if (this.leaderHint) metadata.set(LEADER_HINT_METADATA_KEY, this.leaderHint);
    const kinesisName = (ERRORS[this.errorName] as ErrorSpec).kinesisName;
    if (kinesisName) metadata.set(KINESIS_ERROR_METADATA_KEY, kinesisName);
    return { code: this.status, details: `${this.errorName}: ${this.message}`, metadata };
  }
}

export function isRiffleError(error: unknown, name?: ErrorName): error is RiffleError {
  return error instanceof RiffleError && (name === undefined || error.errorName === name);
}

/**
 * Turns a gRPC client-side error back into a RiffleError. Transport failures (no typed metadata:
 * the node is down, the connection broke, the deadline passed) become retriable network errors.
 */
export function fromServiceError(error: grpc.ServiceError): RiffleError {
  const name = error.metadata?.get(ERROR_NAME_METADATA_KEY)[0];
  if (typeof name === 'string' && name in ERRORS) {
    const hint = error.metadata.get(LEADER_HINT_METADATA_KEY)[0];
    const prefix = `${name}: `;
    const message = error.details?.startsWith(prefix) ? error.details.slice(prefix.length) : error.details;
    return new RiffleError(name as ErrorName, message, { leaderHint: typeof hint === 'string' ? hint : undefined, cause: error });
  }
  if (error.code === grpc.status.DEADLINE_EXCEEDED) return new RiffleError('REQUEST_TIMED_OUT', error.details, { cause: error });
  if (error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.CANCELLED) {
    return new RiffleError('NETWORK_EXCEPTION', error.details, { cause: error });
  }
  if (error.code === grpc.status.INVALID_ARGUMENT) return new RiffleError('INVALID_REQUEST', error.details, { cause: error });
  return new RiffleError('UNKNOWN_SERVER_ERROR', error.details || error.message, { cause: error });
}

/** Converts anything thrown inside a handler into the error the client should see. */
export function toRiffleError(error: unknown): RiffleError {
  if (error instanceof RiffleError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new RiffleError('UNKNOWN_SERVER_ERROR', message, { cause: error });
}
