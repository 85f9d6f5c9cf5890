// The import's refusals: each is reported as one message, with nothing written.
export class ImportError extends Error {}
