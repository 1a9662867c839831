import type http from 'node:http';
import type { Readable } from 'node:stream';
import { fieldOf } from './serve-spec.js';

/**
 * Small HTTP pieces shared by the local router and the Kubernetes metering sidecar: both forward
 * answers whole while keeping a bounded copy to read a score from, and both answer errors as JSON.
 */

/** Answers larger than this are forwarded but not parsed (score, agreement). */
export const MAX_PARSE_BYTES = 1024 * 1024;

/**
 * A bounded copy of what `stream` carries, for reading its answer afterwards: the chunks, or null
 * once they grew past `max` (the stream itself is still forwarded whole by its consumer).
 */
export function copyUpTo(stream: Readable, max = MAX_PARSE_BYTES): () => Buffer[] | null {
  let chunks: Buffer[] | null = [];
  let size = 0;
  stream.on('data', (c: Buffer) => {
    size += c.length;
    if (size > max) chunks = null;
    else chunks?.push(c);
  });
  return () => chunks;
}

/** The JSON a copy holds; undefined when there is none or it is not JSON. */
export function parseJson(chunks: Buffer[] | null): unknown {
  if (!chunks || chunks.length === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The finite number at the dotted `field` of a parsed answer (serve.scoreField), else null. */
export function numericField(body: unknown, field: string | undefined): number | null {
  if (!field) return null;
  const v = fieldOf(body, field);
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** A JSON answer; when the answer already started, cutting it is the only honest signal left. */
export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Read a body up to `max` bytes; more is an error (and the rest is not read). */
export async function readBounded(stream: ReadableStream<Uint8Array> | null, max: number, what: string): Promise<Buffer> {
  if (!stream) return Buffer.alloc(0);
  const reader = stream.getReader();
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks, size);
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`the answer of ${what} is larger than ${max} bytes (answers are read up to ${max} bytes)`);
    }
    chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  }
}
