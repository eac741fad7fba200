// Chunkings of a byte string, as in tests/helpers.py.

export const encoder = new TextEncoder();

/** A latin-1 string (one character per byte) as bytes. */
export function latin1(text) {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** Bytes of a string or bytes. */
export function bytesOf(data) {
  return typeof data === "string" ? encoder.encode(data) : data;
}

export function whole(data) {
  return [bytesOf(data)];
}

export function byteAtATime(data) {
  const bytes = bytesOf(data);
  return Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
}

/** The stream cut in two at every position (including both ends). */
export function* everySplit(data) {
  const bytes = bytesOf(data);
  for (let i = 0; i <= bytes.length; i++) yield [bytes.subarray(0, i), bytes.subarray(i)];
}

export function fixedSize(data, size) {
  const bytes = bytesOf(data);
  const out = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

export function concat(chunks) {
  const size = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
