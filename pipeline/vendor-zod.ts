/**
 * zod, bundled on its own (see vendor.ts): the ingest worker validates records with it and needs nothing else of
 * vendor.ts, so it loads this file alone. Import zod from here, never directly.
 */
export { z } from 'zod';
