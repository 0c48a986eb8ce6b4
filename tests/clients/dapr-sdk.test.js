"use strict";
// Drives a running `tempest serve` with the official Dapr JS SDK (@dapr/dapr),
// unmodified, in HTTP mode.
//
// The test does not start tempest. The harness passes:
//   DAPR_HTTP_PORT  port of tempest's Dapr HTTP API on 127.0.0.1
//   APP_PORT        port this script's DaprServer listens on; tempest was started
//                   with `--app orders=http://127.0.0.1:$APP_PORT`
// and provides the components `statestore` (state.sqlite), `pubsub`
// (pubsub.sqlite) and `localsecretstore` (secretstores.local.file holding
// {"mysecret":"s3cr3t","db":{"password":"pw"}}, nestedSeparator ":").
//
// Run: DAPR_HTTP_PORT=3500 APP_PORT=3000 node --test dapr-sdk.test.js

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { HttpMethod, StateConcurrencyEnum } = require("@dapr/dapr");
const { newAppServer, newClient, parseSdkError, stopAll } = require("./sdk-common");

const DAPR_HTTP_PORT = process.env.DAPR_HTTP_PORT;
const APP_PORT = process.env.APP_PORT;
if (!DAPR_HTTP_PORT || !APP_PORT) {
  throw new Error("DAPR_HTTP_PORT and APP_PORT must be set (see the header of this file)");
}

const STORE = "statestore";
const PUBSUB = "pubsub";
const TOPIC = "orders";
const SECRETS = "localsecretstore";
// Unique per run, so keys and messages never collide with an earlier run on the same data dir.
const RUN = `${process.pid}-${Date.now()}`;

const TEST_TIMEOUT = 30_000;

let server;
let client;
const invocations = []; // what the invoker handler received
const received = []; // data delivered to the pub/sub subscription

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Poll `probe` until it returns a truthy value or `ms` elapses.
async function waitFor(what, probe, ms = 15_000, every = 100) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await sleep(every);
  }
}

// Reject if `promise` does not settle in `ms`, so a hung request fails the test with a message.
function within(ms, what, promise) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

before(
  async () => {
    server = newAppServer(APP_PORT, DAPR_HTTP_PORT);

    await server.invoker.listen(
      "hello",
      async (data) => {
        const body = data.body === undefined ? undefined : JSON.parse(data.body);
        invocations.push(body);
        return { echo: body, contentType: data.metadata.contentType };
      },
      { method: HttpMethod.POST },
    );

    await server.pubsub.subscribe(PUBSUB, TOPIC, async (data) => {
      received.push(data);
    });

    // Starts the app server, then waits until tempest answers GET /v1.0/metadata.
    await server.start();

    client = newClient(DAPR_HTTP_PORT);
    await client.start();

    // Tempest polls GET /dapr/subscribe on the app; wait until it reports the
    // subscription (Dapr lists the app's subscriptions in the metadata API),
    // so nothing published by the tests can race the subscription setup.
    await waitFor("tempest to load the app's subscription to pubsub/orders", async () => {
      const md = await client.metadata.get();
      return (md.subscriptions ?? []).some((s) => s.pubsubname === PUBSUB && s.topic === TOPIC);
    });
  },
  { timeout: 40_000 },
);

after(() => stopAll(server, client), { timeout: 15_000 });

test("service invocation reaches the app's DaprServer and returns its answer", { timeout: TEST_TIMEOUT }, async () => {
  const res = await within(
    10_000,
    "invoke orders/hello",
    client.invoker.invoke("orders", "hello", HttpMethod.POST, { n: 42 }),
  );
  assert.deepEqual(res, { echo: { n: 42 }, contentType: "application/json" });
  assert.deepEqual(invocations.at(-1), { n: 42 });
});

test("state: save, get, getBulk, delete", { timeout: TEST_TIMEOUT }, async () => {
  const k = (s) => `${RUN}-basic-${s}`;
  const saved = await client.state.save(STORE, [
    { key: k("a"), value: { name: "alice", n: 1 } },
    { key: k("b"), value: "just a string" },
    { key: k("c"), value: 3 },
  ]);
  assert.deepEqual(saved, {}, `save failed: ${saved.error}`);

  assert.deepEqual(await client.state.get(STORE, k("a")), { name: "alice", n: 1 });
  assert.equal(await client.state.get(STORE, k("b")), "just a string");
  assert.equal(await client.state.get(STORE, k("c")), 3);

  const bulk = await client.state.getBulk(STORE, [k("a"), k("b"), k("c"), k("missing")]);
  assert.ok(Array.isArray(bulk), `getBulk should return an array, got ${JSON.stringify(bulk)}`);
  assert.equal(bulk.length, 4);
  const byKey = Object.fromEntries(bulk.map((item) => [item.key, item]));
  assert.deepEqual(byKey[k("a")].data, { name: "alice", n: 1 });
  assert.equal(byKey[k("b")].data, "just a string");
  assert.equal(byKey[k("c")].data, 3);
  for (const s of ["a", "b", "c"]) {
    assert.equal(typeof byKey[k(s)].etag, "string", `etag of ${k(s)}`);
    assert.ok(byKey[k(s)].etag.length > 0, `etag of ${k(s)} is empty`);
  }
  assert.ok(byKey[k("missing")], "getBulk lists a missing key too");
  assert.equal(byKey[k("missing")].data, undefined);

  const deleted = await client.state.delete(STORE, k("a"));
  assert.deepEqual(deleted, {}, `delete failed: ${deleted.error}`);
  // A missing key is answered 204 with no body, which the SDK returns as "".
  assert.equal(await client.state.get(STORE, k("a")), "");
  assert.equal(await client.state.get(STORE, k("b")), "just a string");
});

test("state: ETag and first-write concurrency", { timeout: TEST_TIMEOUT }, async () => {
  const key = `${RUN}-etag`;
  assert.deepEqual(await client.state.save(STORE, [{ key, value: { v: 1 } }]), {});

  // client.state.get returns only the value; getBulk carries the ETag.
  const etagOf = async () => {
    const [item] = await client.state.getBulk(STORE, [key]);
    assert.equal(item.key, key);
    return item.etag;
  };
  const etag1 = await etagOf();
  assert.equal(typeof etag1, "string");

  // Save with the current ETag succeeds and changes the ETag.
  const ok = await client.state.save(STORE, [{ key, value: { v: 2 }, etag: etag1 }]);
  assert.deepEqual(ok, {}, `save with the current etag failed: ${ok.error}`);
  assert.deepEqual(await client.state.get(STORE, key), { v: 2 });
  const etag2 = await etagOf();
  assert.notEqual(etag2, etag1);

  // Save with the stale ETag fails: Dapr answers 409 ERR_STATE_SAVE.
  // (state.save does not throw in this SDK; it returns {error}.)
  const stale = await client.state.save(STORE, [{ key, value: { v: 3 }, etag: etag1 }]);
  assert.ok(stale.error, "save with a stale etag must fail");
  const staleErr = parseSdkError(stale.error);
  assert.equal(staleErr.status, 409, staleErr.raw);
  assert.equal(staleErr.body.errorCode, "ERR_STATE_SAVE", staleErr.raw);
  assert.deepEqual(await client.state.get(STORE, key), { v: 2 });

  // First-write concurrency without an ETag on an existing key fails (409 ERR_STATE_SAVE).
  const fw = await client.state.save(STORE, [
    { key, value: { v: 4 }, options: { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } },
  ]);
  assert.ok(fw.error, "first-write on an existing key must fail");
  const fwErr = parseSdkError(fw.error);
  assert.equal(fwErr.status, 409, fwErr.raw);
  assert.equal(fwErr.body.errorCode, "ERR_STATE_SAVE", fwErr.raw);
  assert.deepEqual(await client.state.get(STORE, key), { v: 2 });

  // First-write on a new key succeeds.
  const fresh = `${key}-fresh`;
  const fwNew = await client.state.save(STORE, [
    { key: fresh, value: "first", options: { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } },
  ]);
  assert.deepEqual(fwNew, {}, `first-write on a new key failed: ${fwNew.error}`);
  assert.equal(await client.state.get(STORE, fresh), "first");

  // Delete with a stale ETag fails (409 ERR_STATE_DELETE); with the current one it succeeds.
  const delStale = await client.state.delete(STORE, key, { etag: etag1 });
  assert.ok(delStale.error, "delete with a stale etag must fail");
  const delErr = parseSdkError(delStale.error);
  assert.equal(delErr.status, 409, delErr.raw);
  assert.equal(delErr.body.errorCode, "ERR_STATE_DELETE", delErr.raw);
  assert.deepEqual(await client.state.get(STORE, key), { v: 2 });

  const delOk = await client.state.delete(STORE, key, { etag: etag2 });
  assert.deepEqual(delOk, {}, `delete with the current etag failed: ${delOk.error}`);
  assert.equal(await client.state.get(STORE, key), "");
});

test("state: transaction with upsert and delete", { timeout: TEST_TIMEOUT }, async () => {
  const keep = `${RUN}-tx-keep`;
  const gone = `${RUN}-tx-gone`;
  assert.deepEqual(await client.state.save(STORE, [{ key: gone, value: "old" }]), {});
  assert.equal(await client.state.get(STORE, gone), "old");

  const res = await client.state.transaction(STORE, [
    { operation: "upsert", request: { key: keep, value: { status: "kept" } } },
    { operation: "delete", request: { key: gone } },
  ]);
  assert.equal(res, undefined);

  assert.deepEqual(await client.state.get(STORE, keep), { status: "kept" });
  assert.equal(await client.state.get(STORE, gone), "");
});

test("state: query with a filter", { timeout: TEST_TIMEOUT }, async () => {
  // Only documents of this run match, whatever else the store holds.
  const saved = await client.state.save(STORE, [
    { key: `${RUN}-q1`, value: { run: RUN, city: "Oslo", n: 1 } },
    { key: `${RUN}-q2`, value: { run: RUN, city: "Rome", n: 2 } },
    { key: `${RUN}-q3`, value: { run: RUN, city: "Oslo", n: 3 } },
  ]);
  assert.deepEqual(saved, {}, `save failed: ${saved.error}`);

  const res = await client.state.query(STORE, {
    filter: { AND: [{ EQ: { run: RUN } }, { EQ: { city: "Oslo" } }] },
    sort: [{ key: "n", order: "ASC" }],
    page: { limit: 10 },
  });
  assert.ok(Array.isArray(res.results), `query results: ${JSON.stringify(res)}`);
  assert.deepEqual(
    res.results.map((r) => r.key),
    [`${RUN}-q1`, `${RUN}-q3`],
  );
  assert.deepEqual(res.results[0].data, { run: RUN, city: "Oslo", n: 1 });
  assert.deepEqual(res.results[1].data, { run: RUN, city: "Oslo", n: 3 });
  for (const r of res.results) {
    assert.equal(typeof r.etag, "string", `etag of ${r.key}`);
  }

  const inRes = await client.state.query(STORE, {
    filter: { AND: [{ EQ: { run: RUN } }, { IN: { city: ["Rome", "Paris"] } }] },
    sort: [],
    page: { limit: 10 },
  });
  assert.deepEqual(
    inRes.results.map((r) => [r.key, r.data]),
    [[`${RUN}-q2`, { run: RUN, city: "Rome", n: 2 }]],
  );
});

test("pub/sub: publish reaches the DaprServer subscription", { timeout: TEST_TIMEOUT }, async () => {
  const res = await client.pubsub.publish(PUBSUB, TOPIC, { orderId: 7 });
  assert.deepEqual(res, {}, `publish failed: ${res.error}`);
  const got = await waitFor("{orderId: 7} to reach the subscription", () =>
    received.find((d) => d !== null && typeof d === "object" && d.orderId === 7),
  );
  assert.deepEqual(got, { orderId: 7 });
});

test("pub/sub: publishBulk delivers every entry", { timeout: TEST_TIMEOUT }, async () => {
  assert.equal(typeof client.pubsub.publishBulk, "function");
  const batch = `${RUN}-bulk`;
  const messages = [1, 2, 3].map((i) => ({ orderId: 100 + i, batch }));
  const res = await client.pubsub.publishBulk(PUBSUB, TOPIC, messages);
  assert.deepEqual(
    res.failedMessages.map((f) => ({ entryID: f.message.entryID, error: String(f.error) })),
    [],
    "publishBulk reported failed messages",
  );
  await waitFor("all bulk-published messages to reach the subscription", () =>
    messages.every((m) => received.some((d) => d?.batch === batch && d?.orderId === m.orderId)),
  );
  const got = received.filter((d) => d?.batch === batch).sort((a, b) => a.orderId - b.orderId);
  assert.deepEqual(got, messages);
});

test("secrets: get and getBulk", { timeout: TEST_TIMEOUT }, async () => {
  assert.deepEqual(await client.secret.get(SECRETS, "mysecret"), { mysecret: "s3cr3t" });
  assert.deepEqual(await client.secret.get(SECRETS, "db:password"), { "db:password": "pw" });

  const bulk = await client.secret.getBulk(SECRETS);
  assert.deepEqual(bulk, {
    mysecret: { mysecret: "s3cr3t" },
    "db:password": { "db:password": "pw" },
  });
});

test("metadata lists the components and the app's subscription", { timeout: TEST_TIMEOUT }, async () => {
  const md = await client.metadata.get();
  assert.equal(typeof md.id, "string");
  assert.ok(Array.isArray(md.components), `components: ${JSON.stringify(md)}`);
  const types = Object.fromEntries(md.components.map((c) => [c.name, c.type]));
  assert.equal(types[STORE], "state.sqlite");
  assert.equal(types[PUBSUB], "pubsub.sqlite");
  assert.equal(types[SECRETS], "secretstores.local.file");
  for (const c of md.components) {
    assert.equal(c.version, "v1", `version of ${c.name}`);
  }
  const store = md.components.find((c) => c.name === STORE);
  for (const cap of ["ETAG", "TRANSACTIONAL", "QUERY_API"]) {
    assert.ok(store.capabilities.includes(cap), `statestore capabilities ${store.capabilities} lack ${cap}`);
  }
  const sub = md.subscriptions.find((s) => s.pubsubname === PUBSUB && s.topic === TOPIC);
  assert.ok(sub, `subscriptions: ${JSON.stringify(md.subscriptions)}`);
});
