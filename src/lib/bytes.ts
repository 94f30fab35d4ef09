// Bytes kept for long (the response cache's entries) in memory of their own.

/**
 * The bytes in a backing store of their own, exactly their size. What an entry keeps lives for
 * minutes; a Buffer made from a string shares one of Node's 64 KiB pool slabs, and zlib's
 * one-call functions answer a view of their 64 KiB output chunk, so a 3 KB body or a 900-byte
 * variant kept as it came pinned 64 KiB each: 1,188 such slabs (74 MB, 95% of it unused) in a
 * heap snapshot of the `mixed` benchmark, where the cache counted 14 MB.
 */
export function ownBytes(bytes: Buffer): Buffer {
  if (bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length) return bytes;
  const own = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(own);
  return own;
}

/** `text` as UTF-8, in a backing store of its own (see ownBytes). */
export function ownUtf8(text: string): Buffer {
  const own = Buffer.allocUnsafeSlow(Buffer.byteLength(text));
  own.write(text);
  return own;
}
