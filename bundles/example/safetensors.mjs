// Minimal safetensors reader/writer (float32 only), no dependencies.
//
// File layout (https://github.com/huggingface/safetensors):
//   bytes 0..8       N, the header length: unsigned 64-bit little-endian integer
//   bytes 8..8+N     UTF-8 JSON header, padded with spaces:
//                      { "__metadata__": { "key": "string value", ... },
//                        "<tensor>": { "dtype": "F32", "shape": [...], "data_offsets": [begin, end] }, ... }
//   bytes 8+N..      raw tensor data, row-major, little-endian; data_offsets are relative to here
//
// The same files load in Python with `safetensors.numpy.load_file(path)` or
// `safetensors.torch.load_file(path)`.

/**
 * Serialize `{ name: { shape, data: Float32Array } }` (tensors are written in the
 * given key order) plus string metadata. Output is deterministic.
 */
export function encodeSafetensors(tensors, metadata = {}) {
  const header = { __metadata__: metadata };
  let offset = 0;
  for (const [name, { shape, data }] of Object.entries(tensors)) {
    if (shape.reduce((a, b) => a * b, 1) !== data.length) throw new Error(`${name}: shape ${shape} != ${data.length} values`);
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.length * 4] };
    offset += data.length * 4;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad with spaces so the data starts 8-byte aligned, as the reference implementation does.
  const headerBytes = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, ' ')]);
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const { data } of Object.values(tensors)) {
    for (const value of data) pos = out.writeFloatLE(value, pos);
  }
  return out;
}

/** Parse a safetensors buffer into `{ metadata, tensors: { name: { shape, data: Float32Array } } }`. */
export function decodeSafetensors(buf) {
  const headerLength = Number(buf.readBigUInt64LE(0));
  if (headerLength > buf.length - 8) throw new Error('safetensors: header length exceeds file size');
  const { __metadata__: metadata = {}, ...entries } = JSON.parse(buf.toString('utf8', 8, 8 + headerLength));
  const dataStart = 8 + headerLength;
  const tensors = {};
  for (const [name, { dtype, shape, data_offsets: [begin, end] }] of Object.entries(entries)) {
    if (dtype !== 'F32') throw new Error(`safetensors: ${name} has dtype ${dtype}, only F32 is supported`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4 || dataStart + end > buf.length) throw new Error(`safetensors: bad data_offsets for ${name}`);
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(dataStart + begin + i * 4);
    tensors[name] = { shape, data };
  }
  return { metadata, tensors };
}
