// The type of the Fastify instance every module registers on: its type provider is TypeBox, so a
// route's schema types its request. Here, below the context (src/context.ts re-exports it), so
// the HTTP kit can name the app without importing the context's types.
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;
