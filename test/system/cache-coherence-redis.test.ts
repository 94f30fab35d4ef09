// The cache coherence property (src/cache/coherence.test.ts explains it) with REDIS_URL:
// invalidations over Redis pub/sub, and the shared Redis tier behind both in-process caches.
// The Redis is the shared one on 127.0.0.1:6379; the instances' keys live under their own
// prefix (harness.ts), deleted afterwards.
import { coherence } from '../coherence.ts';

coherence('two instances over Redis pub/sub, with the shared Redis tier', { REDIS_URL: 'redis://127.0.0.1:6379' }, 15);
