import { open } from 'node:fs/promises';

/**
 * Just enough of the safetensors format (huggingface/safetensors, `safetensors/src/tensor.rs`) to
 * split a file into its header and its tensors' byte ranges:
 *
 *   8 bytes   N, little-endian u64: the header's length
 *   N bytes   UTF-8 JSON object: {"<tensor>": {"dtype", "shape", "data_offsets": [begin, end]}, …}
 *             plus an optional "__metadata__" map of string to string
 *   rest      the byte buffer; data_offsets are relative to its start
 *
 * Validation follows the reference reader (`SafeTensors::read_metadata` + `Metadata::validate`):
 * N ≤ 100,000,000; 8 + N ≤ file size; tensors sorted by offset must tile the buffer from 0 with no
 * gap or overlap, and the last end plus 8 + N must be the file's size; for the dtypes whose element
 * size is whole bytes, end − begin = product(shape) × size. Sub-byte dtypes (F4, F6_*) and dtypes
 * newer than this list are accepted on their offsets alone: the split needs only the ranges.
 */
export const MAX_HEADER_BYTES = 100_000_000;

const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
  C64: 8,
};

export interface TensorRange {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offsets in the file (header included), end exclusive. */
  start: number;
  end: number;
}

export interface SafetensorsLayout {
  /** 8 + N: the length prefix and the JSON header, the first `headerBytes` of the file. */
  headerBytes: number;
  /** Tensors in file order. */
  tensors: TensorRange[];
}

/** What is wrong with a file that is not a valid safetensors file (the caller names the file). */
export class SafetensorsFormatError extends Error {}

/** Parse and validate the header of a safetensors file of `fileSize` bytes, reading only the header. */
export async function readSafetensorsLayout(file: string, fileSize: number): Promise<SafetensorsLayout> {
  const fh = await open(file, 'r');
  try {
    if (fileSize < 8) throw new SafetensorsFormatError(`it is ${fileSize} bytes, shorter than the 8-byte header length`);
    const prefix = Buffer.alloc(8);
    await fh.read(prefix, 0, 8, 0);
    const n = prefix.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsFormatError(`its header length is ${n} bytes, more than the ${MAX_HEADER_BYTES} the format allows`);
    const headerLength = Number(n);
    if (8 + headerLength > fileSize) throw new SafetensorsFormatError(`its header length is ${headerLength} bytes but the file has only ${fileSize - 8} after the length`);
    const header = Buffer.alloc(headerLength);
    await fh.read(header, 0, headerLength, 8);
    return parseSafetensorsHeader(header, fileSize);
  } finally {
    await fh.close();
  }
}

/** Validate the JSON header bytes (after the 8-byte length) against a file of `fileSize` bytes. */
export function parseSafetensorsHeader(header: Buffer, fileSize: number): SafetensorsLayout {
  const headerBytes = 8 + header.length;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(header);
  } catch {
    throw new SafetensorsFormatError('its header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SafetensorsFormatError(`its header is not valid JSON (${(err as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new SafetensorsFormatError('its header is not a JSON object');
  const tensors: TensorRange[] = [];
  for (const [name, info] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (info === null || typeof info !== 'object' || Array.isArray(info) || Object.values(info).some((v) => typeof v !== 'string')) {
        throw new SafetensorsFormatError('its "__metadata__" is not a map of strings to strings');
      }
      continue;
    }
    const t = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    const where = `tensor "${name}"`;
    if (t === null || typeof t !== 'object') throw new SafetensorsFormatError(`${where} is not an object`);
    if (typeof t.dtype !== 'string') throw new SafetensorsFormatError(`${where} has no string "dtype"`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new SafetensorsFormatError(`${where} has no "shape" of non-negative integers`);
    }
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new SafetensorsFormatError(`${where} has no "data_offsets" [begin, end] of non-negative integers`);
    }
    tensors.push({ name, dtype: t.dtype, shape: t.shape as number[], start: headerBytes + (off[0] as number), end: headerBytes + (off[1] as number) });
  }
  tensors.sort((a, b) => a.start - b.start || a.end - b.end);
  let at = headerBytes;
  for (const t of tensors) {
    if (t.start !== at || t.end < t.start) {
      throw new SafetensorsFormatError(`tensor "${t.name}" has data_offsets [${t.start - headerBytes}, ${t.end - headerBytes}]: expected it to begin at ${at - headerBytes} (tensors must tile the buffer with no gap or overlap)`);
    }
    const size = DTYPE_BYTES[t.dtype];
    if (size !== undefined) {
      const elements = t.shape.reduce((n, d) => n * d, 1);
      if (elements * size !== t.end - t.start) {
        throw new SafetensorsFormatError(`tensor "${t.name}" (${t.dtype} [${t.shape.join(', ')}]) needs ${elements * size} bytes but its data_offsets span ${t.end - t.start}`);
      }
    }
    at = t.end;
  }
  if (at !== fileSize) {
    throw new SafetensorsFormatError(`its tensors end at byte ${at} of the file but the file has ${fileSize} (the buffer must be covered exactly)`);
  }
  return { headerBytes, tensors };
}

/**
 * Tensors smaller than this are coalesced into runs (of at least this size, or to the end of the
 * file); tensors this large or larger are one blob each. Why 1 MiB: every blob costs one request
 * (a HEAD on push, a GET on pull: a few ms each, about what 1 MiB takes to move at 200–400 MB/s),
 * so blobs much smaller than this would be paid for in round trips, not bytes; and the tensors of
 * real models below it are norms and biases (a 7B Llama has 65 norm vectors of 8 KiB among 291
 * tensors), which a fine-tune rarely changes alone. A 16 GB model becomes ~300–1,000 blobs, not
 * 10,000; a changed small tensor re-uploads at most a ~2 MiB run.
 */
export const TENSOR_RUN_BYTES = 1024 * 1024;

export interface PlannedPart {
  start: number;
  end: number;
  /** The tensors whose bytes this part holds (none for the header part). */
  tensors: TensorRange[];
}

/**
 * Cut a file into parts: the header (8 + N bytes) alone — it changes when metadata does, without
 * any tensor changing — then each large tensor alone and runs of small ones. The cut depends only
 * on the layout (names, dtypes, shapes, offsets), never on tensor values, so a fine-tune that keeps
 * the shapes cuts the file at the same places and unchanged tensors keep their blobs.
 */
export function planParts(layout: SafetensorsLayout, runBytes = TENSOR_RUN_BYTES): PlannedPart[] {
  const parts: PlannedPart[] = [{ start: 0, end: layout.headerBytes, tensors: [] }];
  let run: PlannedPart | undefined;
  const flush = () => {
    if (!run) return;
    // A run of empty tensors holds no bytes: they join the part before (an empty blob is no use).
    if (run.end === run.start) parts[parts.length - 1]!.tensors.push(...run.tensors);
    else parts.push(run);
    run = undefined;
  };
  for (const t of layout.tensors) {
    const size = t.end - t.start;
    if (size >= runBytes) {
      flush();
      parts.push({ start: t.start, end: t.end, tensors: [t] });
      continue;
    }
    run ??= { start: t.start, end: t.start, tensors: [] };
    run.end = t.end;
    run.tensors.push(t);
    if (run.end - run.start >= runBytes) flush();
  }
  flush();
  return parts;
}
