/**
 * The one error type of the data loaders.
 *
 * Every problem with a user's data (a missing file, a truncated IDX file, a `.npy` header we cannot read, a PNG
 * folder without classes) is reported as a `DataError` whose message names the file and says what is wrong, so the
 * CLI can print it as it is and a user can fix the file without reading a stack trace. Anything else that escapes a
 * loader is a bug in the loader.
 */

export class DataError extends Error {
  /** The file or folder the problem is about, when there is one. */
  readonly filePath: string | undefined;

  constructor(message: string, filePath?: string, options?: { cause?: unknown }) {
    super(filePath === undefined ? message : `${filePath}: ${message}`, options);
    this.name = 'DataError';
    this.filePath = filePath;
  }
}

/** Describes an unknown thrown value for inclusion in a `DataError` message. */
export function describeCause(cause: unknown): string {
  if (cause instanceof Error) return cause.message;
  return String(cause);
}
