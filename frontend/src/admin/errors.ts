// What the page says when a call fails: a sentence in the page's language for each failure the
// page can meet, by the admin API's status and code. The API's own message is in English: the
// English page shows it as it is; the Chinese page keeps it (as `{detail}`) only where it tells
// more than the sentence, such as which value was refused.

import { ApiError } from "./api";
import { type Key, t } from "./i18n";

/** The words for a failed call (or any other error) in the page's language. */
export function problem(error: unknown): string {
  if (!(error instanceof ApiError)) return error instanceof Error ? error.message : String(error);
  return t(problemKey(error), { detail: error.message, status: error.status });
}

function problemKey(error: ApiError): Key {
  switch (error.status) {
    case 0:
      return "unreachable";
    case 400:
    case 422:
      return "badInput";
    case 401:
      return "keyRejectedLater";
    case 404: // a key no one made has the code; a relay without ADMIN_KEY answers every path without one
      return error.code === "not_found" ? "noSuchKey" : "adminOffNow";
    case 409:
      return "nameTaken";
    case 503:
      return "storageFailing";
    default:
      return "callFailed";
  }
}
