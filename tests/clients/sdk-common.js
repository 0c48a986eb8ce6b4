"use strict";
// Shared by the Dapr JS SDK test scripts: the SDK's client and app-server options over HTTP
// on loopback, and how its HTTP errors read.

const assert = require("node:assert/strict");
const { DaprClient, DaprServer, CommunicationProtocolEnum, LogLevel } = require("@dapr/dapr");

const logger = { level: LogLevel.Error };

// A client of the Dapr HTTP API on 127.0.0.1:`daprPort`.
function newClient(daprPort) {
  return new DaprClient(clientOptions(daprPort));
}

// An app server on 127.0.0.1:`appPort` whose own client reaches 127.0.0.1:`daprPort`.
function newAppServer(appPort, daprPort) {
  return new DaprServer({
    serverHost: "127.0.0.1",
    serverPort: appPort,
    communicationProtocol: CommunicationProtocolEnum.HTTP,
    clientOptions: clientOptions(daprPort),
    logger,
  });
}

function clientOptions(daprPort) {
  return {
    daprHost: "127.0.0.1",
    daprPort,
    communicationProtocol: CommunicationProtocolEnum.HTTP,
    logger,
  };
}

// Stops what `before` started, whichever of it did start.
async function stopAll(server, client) {
  if (server) await server.stop();
  if (client) await client.stop();
}

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

module.exports = { newAppServer, newClient, parseSdkError, stopAll };
