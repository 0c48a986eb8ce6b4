"use strict";
// Shared by the Dapr JS SDK test scripts.

const assert = require("node:assert/strict");

// The SDK's HTTP client throws (or, for state.save/state.delete, returns as {error})
// an Error whose message is JSON: {error: statusText, error_msg: body, status}.
function parseSdkError(err) {
  assert.ok(err instanceof Error, `expected an Error, got ${JSON.stringify(err)}`);
  let parsed;
  try {
    parsed = JSON.parse(err.message);
  } catch {
    assert.fail(`SDK error is not the HTTP error shape: ${err.message}`);
  }
  let body = parsed.error_msg;
  try {
    body = JSON.parse(parsed.error_msg);
  } catch {
    // not JSON; keep the text
  }
  return { status: parsed.status, body, raw: err.message };
}

module.exports = { parseSdkError };
