// The error base classes (apart from index.js so the generated errors.js
// can extend them without an import cycle).

/** A refusal or failure: `code` and `codeName` are stable, `message` is
 * for a person and says what to do, `data` has the code's extra fields. */
export class ValetKeyError extends Error {
  constructor(message, code = undefined, data = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code ?? new.target.code ?? 0;
    this.codeName = data.name ?? new.target.codeName ?? '';
    this.data = data;
  }
}

/** The daemon could not be reached, or the connection ended. */
export class ConnectionError extends ValetKeyError {}
ConnectionError.codeName = 'connection';

/** The daemon sent something this client cannot read. */
export class ProtocolError extends ValetKeyError {}
ProtocolError.codeName = 'protocol';
