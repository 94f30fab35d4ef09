// Loaded with --import (NODE_OPTIONS) by the bench configurations that set V8 flags Node does not
// accept in NODE_OPTIONS, such as --heap-growing-percent: V8 reads them when set at run time.
// JavaScript, not TypeScript: a .ts module would load Node's type stripping (~17 MB) into the
// process whose memory is measured.
import v8 from 'node:v8';

if (process.env.BENCH_V8_FLAGS) v8.setFlagsFromString(process.env.BENCH_V8_FLAGS);
