import { randomFillSync } from 'node:crypto';
import { open } from 'node:fs/promises';

/**
 * Real safetensors files for tests and the bench, written the way the reference writer does
 * (huggingface/safetensors `serialize_to_file`): 8-byte little-endian header length, the JSON header
 * padded with spaces to a multiple of 8, then each tensor's bytes in header order. Tensor bytes are
 * random (so every tensor is its own blob) unless `fill` says otherwise; written in ≤ 4 MiB chunks,
 * so a GiB-sized file never sits in memory.
 */
export interface TensorSpec {
  name: string;
  dtype: string;
  shape: number[];
  /** A byte repeated over the whole tensor (identical tensors share a blob); random when absent. */
  fill?: number;
}

const DTYPE_BYTES: Record<string, number> = { BOOL: 1, U8: 1, I8: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8 };

export function tensorBytes(t: Pick<TensorSpec, 'dtype' | 'shape'>): number {
  const size = DTYPE_BYTES[t.dtype];
  if (size === undefined) throw new Error(`test helper: unknown dtype ${t.dtype}`);
  return t.shape.reduce((n, d) => n * d, 1) * size;
}

/** The header bytes (length prefix included) for these tensors, in this order. */
export function safetensorsHeader(tensors: TensorSpec[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const n = tensorBytes(t);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(body.length));
  return Buffer.concat([prefix, body]);
}

const CHUNK = 4 * 1024 * 1024;

/** Write a safetensors file; returns its size. */
export async function writeSafetensors(file: string, tensors: TensorSpec[], metadata?: Record<string, string>): Promise<number> {
  const fh = await open(file, 'w');
  try {
    const header = safetensorsHeader(tensors, metadata);
    await fh.write(header);
    let size = header.length;
    const buf = Buffer.alloc(CHUNK);
    for (const t of tensors) {
      let left = tensorBytes(t);
      while (left > 0) {
        const n = Math.min(left, CHUNK);
        if (t.fill === undefined) randomFillSync(buf, 0, n);
        else buf.fill(t.fill, 0, n);
        await fh.write(buf, 0, n);
        left -= n;
        size += n;
      }
    }
    return size;
  } finally {
    await fh.close();
  }
}

/** Overwrite one tensor's bytes in place with new random bytes (a fine-tune of that tensor); returns its byte count. */
export async function retrainTensor(file: string, tensors: TensorSpec[], name: string, metadata?: Record<string, string>): Promise<number> {
  const headerBytes = safetensorsHeader(tensors, metadata).length;
  let offset = headerBytes;
  for (const t of tensors) {
    if (t.name === name) {
      const fh = await open(file, 'r+');
      try {
        let left = tensorBytes(t);
        let at = offset;
        const buf = Buffer.alloc(Math.min(CHUNK, left));
        while (left > 0) {
          const n = Math.min(left, buf.length);
          randomFillSync(buf, 0, n);
          await fh.write(buf, 0, n, at);
          at += n;
          left -= n;
        }
      } finally {
        await fh.close();
      }
      return tensorBytes(t);
    }
    offset += tensorBytes(t);
  }
  throw new Error(`test helper: no tensor ${name}`);
}

/** A model-like list: `count` matrices of `dtype [rows, cols]`, each followed by a small norm vector. */
export function modelTensors(count: number, rows: number, cols: number, dtype = 'F16'): TensorSpec[] {
  const out: TensorSpec[] = [];
  for (let i = 0; i < count; i++) {
    out.push({ name: `layers.${i}.weight`, dtype, shape: [rows, cols] });
    out.push({ name: `layers.${i}.norm`, dtype: 'F32', shape: [cols] });
  }
  return out;
}
