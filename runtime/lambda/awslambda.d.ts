// The Node.js Lambda runtime's streaming globals, declared once.
// https://docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html
import type { Writable } from 'node:stream';

declare global {
  namespace awslambda {
    interface HttpResponseMetadata {
      statusCode: number;
      headers?: Record<string, string>;
      cookies?: string[];
    }
    type StreamingHandler<E> = (event: E, responseStream: Writable, context: unknown) => Promise<void>;
    function streamifyResponse<E>(handler: StreamingHandler<E>): StreamingHandler<E>;
    const HttpResponseStream: { from(stream: Writable, metadata: HttpResponseMetadata): Writable };
  }
}
export {};
