"use strict";
// Drives Tempest's Dapr functions inside the Spin WebAssembly component (served by
// `wasmtime serve`, a fresh instance per request) with the official Dapr JS SDK
// (@dapr/dapr), unmodified, in HTTP mode.
//
// The test does not start the component. The harness (tests/tests/spin.rs) passes:
//   DAPR_HTTP_PORT  port of the component's Dapr HTTP API on 127.0.0.1
//   APP_PORT        port this script's DaprServer listens on; the component was told
//                   TEMPEST_APPS=orders=http://127.0.0.1:$APP_PORT
//   STORE, PUBSUB   the state store and pub/sub component on the cloud backend under test
//                   (Azure's on Azurite, or AWS's on moto)
//   VAULT           the cloud secret store, holding db-password = s3cret
//   COMPONENTS      JSON: every component's name and type, as metadata must list them
// besides `files` (secretstores.local.file in the mounted folder, holding
// {"mysecret":"s3cr3t"}). What is published is checked by the harness, which reads the
// subscriber's queue.
//
// Run: DAPR_HTTP_PORT=3500 APP_PORT=3000 RUN=x STORE=tables PUBSUB=queues VAULT=vault \
//      COMPONENTS='{"tables": "state.azure.tablestorage", ...}' node --test dapr-sdk-spin.test.js

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { HttpMethod, StateConcurrencyEnum } = require("@dapr/dapr");
const { newAppServer, newClient, parseSdkError, stopAll } = require("./sdk-common");

const DAPR_HTTP_PORT = process.env.DAPR_HTTP_PORT;
const APP_PORT = process.env.APP_PORT;
const { RUN, STORE, PUBSUB, VAULT, COMPONENTS } = process.env;
if (!DAPR_HTTP_PORT || !APP_PORT || !RUN || !STORE || !PUBSUB || !VAULT || !COMPONENTS) {
  throw new Error(
    "DAPR_HTTP_PORT, APP_PORT, RUN, STORE, PUBSUB, VAULT and COMPONENTS must be set (see the header of this file)",
  );
}
// Each request compiles nothing but builds its runtime afresh (a new instance per request).
const TEST_TIMEOUT = 60_000;

let server;
let client;
const invocations = [];

before(
  async () => {
    server = newAppServer(APP_PORT, DAPR_HTTP_PORT);
    await server.invoker.listen(
      "hello",
      async (data) => {
        const body = data.body === undefined ? undefined : JSON.parse(data.body);
        invocations.push({ body, headers: data.headers });
        return { echo: body };
      },
      { method: HttpMethod.POST },
    );
    await server.start();
    client = newClient(DAPR_HTTP_PORT);
    await client.start();
  },
  { timeout: 60_000 },
);

after(() => stopAll(server, client), { timeout: 15_000 });

test("invoke: the component calls the app over the host's outgoing HTTP", { timeout: TEST_TIMEOUT }, async () => {
  const res = await client.invoker.invoke("orders", "hello", HttpMethod.POST, { n: 42 });
  assert.deepEqual(res, { echo: { n: 42 } });
  assert.deepEqual(invocations.at(-1).body, { n: 42 });
});

test(`state on ${STORE}: save, get, getBulk, delete`, { timeout: TEST_TIMEOUT }, async () => {
  const k = (s) => `${RUN}-basic-${s}`;
  const saved = await client.state.save(STORE, [
    { key: k("a"), value: { name: "alice", n: 1 } },
    { key: k("b"), value: "just a string" },
  ]);
  assert.deepEqual(saved, {}, `save failed: ${saved.error}`);
  assert.deepEqual(await client.state.get(STORE, k("a")), { name: "alice", n: 1 });
  assert.equal(await client.state.get(STORE, k("b")), "just a string");

  const bulk = await client.state.getBulk(STORE, [k("a"), k("b"), k("missing")]);
  const byKey = Object.fromEntries(bulk.map((item) => [item.key, item]));
  assert.deepEqual(byKey[k("a")].data, { name: "alice", n: 1 });
  assert.ok(byKey[k("a")].etag.length > 0, "an ETag from the store");
  assert.equal(byKey[k("missing")].data, undefined);

  assert.deepEqual(await client.state.delete(STORE, k("a")), {});
  assert.equal(await client.state.get(STORE, k("a")), "");
  assert.equal(await client.state.get(STORE, k("b")), "just a string");
});

test(`state on ${STORE}: ETags and first-write`, { timeout: TEST_TIMEOUT }, async () => {
  const key = `${RUN}-etag`;
  assert.deepEqual(await client.state.save(STORE, [{ key, value: { v: 1 } }]), {});
  const [{ etag: etag1 }] = await client.state.getBulk(STORE, [key]);
  const ok = await client.state.save(STORE, [{ key, value: { v: 2 }, etag: etag1 }]);
  assert.deepEqual(ok, {}, `save with the current etag failed: ${ok.error}`);

  const stale = await client.state.save(STORE, [{ key, value: { v: 3 }, etag: etag1 }]);
  assert.ok(stale.error, "save with a stale etag must fail");
  const staleErr = parseSdkError(stale.error);
  assert.equal(staleErr.status, 409, staleErr.raw);
  assert.equal(staleErr.body.errorCode, "ERR_STATE_SAVE", staleErr.raw);

  const fw = await client.state.save(STORE, [
    { key, value: { v: 4 }, options: { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } },
  ]);
  assert.ok(fw.error, "first-write on an existing key must fail");
  assert.equal(parseSdkError(fw.error).status, 409);
  assert.deepEqual(await client.state.get(STORE, key), { v: 2 });
});

test(`publish to ${PUBSUB}`, { timeout: TEST_TIMEOUT }, async () => {
  const res = await client.pubsub.publish(PUBSUB, "orders", { orderId: 7, run: RUN });
  assert.deepEqual(res, {}, `publish failed: ${res.error}`);
});

test(`secrets from ${VAULT} and from a mounted file`, { timeout: TEST_TIMEOUT }, async () => {
  assert.deepEqual(await client.secret.get(VAULT, "db-password"), { "db-password": "s3cret" });
  assert.deepEqual(await client.secret.get("files", "mysecret"), { mysecret: "s3cr3t" });
  assert.deepEqual(await client.secret.getBulk("files"), { mysecret: { mysecret: "s3cr3t" } });
});

test("metadata lists the components", { timeout: TEST_TIMEOUT }, async () => {
  const md = await client.metadata.get();
  const types = Object.fromEntries(md.components.map((c) => [c.name, c.type]));
  assert.deepEqual(types, JSON.parse(COMPONENTS));
});
