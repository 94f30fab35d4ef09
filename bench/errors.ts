/** A bad command line: the message, then the usage text. */
export class UsageError extends Error {}
