// Imported first by main.ts, before anything can touch libuv's threadpool (which reads
// UV_THREADPOOL_SIZE once, when first used). Sized deliberately: Argon2 hashing, zlib
// compression and fs share it, and config.ts sizes the hashing semaphore to the same number.
process.env.UV_THREADPOOL_SIZE ??= '4';
