// A Node.js client that loads proto/cart/v1/cart.proto at run time (@grpc/proto-loader,
// @grpc/grpc-js) runs the same cart scenario as the Python client.
//
// Usage: node scenario.js <grpc host:port> <repo root>
//
// Nothing is hand-written about the API: stubs come from the proto, and errors are read from
// the standard grpc-status-details-bin trailer (google.rpc.Status with its ErrorInfo), decoded
// with protobufjs from the vendored proto/google/rpc protos.
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const [target, repoRoot] = process.argv.slice(2);
if (!target || !repoRoot) {
  console.error("usage: node scenario.js <grpc host:port> <repo root>");
  process.exit(2);
}
const protoDir = path.join(repoRoot, "proto");

const definition = protoLoader.loadSync("cart/v1/cart.proto", {
  includeDirs: [protoDir],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
});
const cartV1 = grpc.loadPackageDefinition(definition).cart.v1;
const client = new cartV1.CartService(target, grpc.credentials.createInsecure());

// google.rpc.Status and its detail types, to decode grpc-status-details-bin.
const rpcTypes = new protobuf.Root();
rpcTypes.resolvePath = (_origin, file) => path.join(protoDir, file);
rpcTypes.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"]);
const Status = rpcTypes.lookupType("google.rpc.Status");
const ErrorInfo = rpcTypes.lookupType("google.rpc.ErrorInfo");

/** One unary call as a promise, with a 10 s deadline like the Python client. */
function call(method, request, stub = client) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10_000);
    stub[method](request, { deadline }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

/** The ErrorInfo reason of a failed call, read from its google.rpc.Status trailer. */
function errorReason(error) {
  const [raw] = error.metadata.get("grpc-status-details-bin");
  assert.ok(raw, "no grpc-status-details-bin trailer");
  const status = Status.decode(raw);
  assert.equal(status.code, error.code, "the Status code matches the call's");
  const detail = status.details.find(
    (any) => any.type_url === "type.googleapis.com/google.rpc.ErrorInfo",
  );
  assert.ok(detail, "no ErrorInfo in the status details");
  const info = ErrorInfo.decode(detail.value);
  assert.equal(info.domain, "cart.v1");
  return info.reason;
}

/** Resolves to the error of a call that must fail. */
async function failure(method, request, what, stub = client) {
  try {
    await call(method, request, stub);
  } catch (error) {
    return error;
  }
  throw new Error(what);
}

const newItem = (sku, quantity, unit_price) => ({ sku, quantity, unit_price });
const state = {};

const steps = [
  ["create", async () => {
    const cart = await call("Create", {
      currency: "USD",
      customer_id: "node",
      metadata: { lang: "node" },
    });
    assert.equal(cart.id.length, 24);
    assert.equal(cart.version, 1);
    assert.ok(cart.hmac);
    assert.equal(cart.status, "CART_STATUS_ACTIVE");
    state.cart = cart;
  }],
  ["add items", async () => {
    const cart = await call("AddItems", {
      cart_id: state.cart.id,
      items: [newItem("JS-1", 2, 1999), newItem("JS-2", 1, 500)],
    });
    assert.deepEqual(
      [cart.item_count, cart.unique_item_count, cart.subtotal, cart.total],
      [3, 2, 4498, 4498],
    );
  }],
  ["get", async () => {
    const cart = await call("Get", { cart_id: state.cart.id });
    assert.deepEqual(
      cart.items.map((item) => [item.sku, item.quantity]),
      [["JS-1", 2], ["JS-2", 1]],
    );
    assert.equal(cart.metadata.lang, "node");
  }],
  ["clear", async () => {
    const response = await call("Clear", {
      cart_id: state.cart.id,
      reason: "customer_requested",
    });
    assert.equal(response.items_cleared, 3);
    assert.equal(response.cart.total, 0);
    assert.deepEqual(response.cart.items, []);
    assert.equal(response.cart.hmac, state.cart.hmac);
    assert.ok(response.cart.cleared_at, "cleared_at is set");
  }],
  ["delete", async () => {
    await call("AddItems", { cart_id: state.cart.id, items: [newItem("JS-3", 1, 100)] });
    const response = await call("Delete", {
      cart_id: state.cart.id,
      order_number: "JS-ORDER-1",
    });
    assert.equal(response.cart.status, "CART_STATUS_DELETED");
    assert.equal(response.cart.order_number, "JS-ORDER-1");
  }],
  ["error carries ErrorInfo reason", async () => {
    const error = await failure(
      "AddItems",
      { cart_id: state.cart.id, items: [newItem("X", 1, 0)] },
      "a deleted cart accepted items",
    );
    assert.equal(error.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(errorReason(error), "CART_DELETED");
  }],
  ["remove", async () => {
    const other = await call("Create", { currency: "EUR", items: [newItem("R", 4, 1)] });
    const response = await call("Remove", { cart_id: other.id });
    assert.equal(response.items_removed, 4);
    const error = await failure("Get", { cart_id: other.id }, "a removed cart is still readable");
    assert.equal(error.code, grpc.status.NOT_FOUND);
    assert.equal(errorReason(error), "CART_NOT_FOUND");
  }],
  ["retry policy and request ids", async () => {
    // The retry policy the README offers, as a real gRPC client loads it.
    const readme = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8");
    const config = readme.match(/```json\n(\{[\s\S]*?"methodConfig"[\s\S]*?\})\n```/)[1];
    JSON.parse(config);
    const retrying = new cartV1.CartService(target, grpc.credentials.createInsecure(), {
      "grpc.service_config": config,
      "grpc.enable_retries": 1,
    });
    try {
      const create = { currency: "USD", request_id: "js-create-7c41" };
      const first = await call("Create", create, retrying);
      assert.deepEqual(await call("Create", create, retrying), first, "a resent Create made another cart");
      const clear = { cart_id: first.id, reason: "js", request_id: "js-clear-93ae" };
      await call("AddItems", { cart_id: first.id, items: [newItem("A", 2, 10)] }, retrying);
      const cleared = await call("Clear", clear, retrying);
      await call("AddItems", { cart_id: first.id, items: [newItem("B", 1, 10)] }, retrying);
      assert.deepEqual(await call("Clear", clear, retrying), cleared);
      assert.equal(cleared.items_cleared, 2);
      const cart = await call("Get", { cart_id: first.id }, retrying);
      assert.deepEqual(cart.items.map((item) => item.sku), ["B"]);
      const error = await failure(
        "Clear",
        { ...clear, reason: "other" },
        "a reused request id was accepted",
        retrying,
      );
      assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(errorReason(error), "REQUEST_ID_REUSED");
    } finally {
      retrying.close();
    }
  }],
  ["freeze, then delete (checkout)", async () => {
    const cart = await call("Create", { currency: "USD", items: [newItem("F", 1, 700)] });
    const frozen = await call("Freeze", { cart_id: cart.id, reason: "checkout" });
    assert.equal(frozen.status, "CART_STATUS_FROZEN");
    assert.equal(frozen.freeze_reason, "checkout");
    assert.ok(frozen.frozen_at);
    assert.equal(frozen.version, cart.version + 1);
    const again = await call("Freeze", { cart_id: cart.id, reason: "checkout" });
    assert.equal(again.version, frozen.version, "a second Freeze bumped the version");
    const error = await failure(
      "AddItems",
      { cart_id: cart.id, items: [newItem("G", 1, 1)] },
      "a frozen cart accepted items",
    );
    assert.equal(error.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(errorReason(error), "CART_FROZEN");
    const done = await call("Delete", { cart_id: cart.id, order_number: "JS-ORDER-2" });
    assert.equal(done.cart.status, "CART_STATUS_DELETED");
    assert.equal(done.cart.item_count, 1);
  }],
  ["guest cart merged at login", async () => {
    const customer = `js-customer-${state.cart.id}`;
    const mine = await call("Create", { currency: "USD", customer_id: customer, items: [newItem("M", 1, 100)] });
    const guest = await call("Create", { currency: "USD", items: [newItem("M", 2, 100), newItem("N", 1, 50)] });
    const request = {
      source_cart_id: guest.id,
      customer_id: customer,
      mode: "MERGE_MODE_SUM",
      request_id: "js-login-1",
    };
    const merged = await call("Merge", request);
    assert.equal(merged.cart.id, mine.id);
    assert.equal(merged.source_cart_id, guest.id);
    assert.equal(merged.lines_merged, 2);
    const lines = (cart) => cart.items.map((item) => [item.sku, item.quantity]);
    assert.deepEqual(lines(merged.cart), [["M", 3], ["N", 1]]);
    assert.deepEqual(lines((await call("Merge", request)).cart), lines(merged.cart), "a retried Merge added again");
    const tombstone = await call("Get", { cart_id: guest.id });
    assert.equal(tombstone.status, "CART_STATUS_MERGED");
    assert.equal(tombstone.merged_into, mine.id);
    assert.equal((await call("GetActiveCart", { customer_id: customer })).id, mine.id);
    const error = await failure(
      "GetActiveCart",
      { customer_id: `${customer}-nobody` },
      "a customer without carts has an active cart",
    );
    assert.equal(error.code, grpc.status.NOT_FOUND);
    assert.equal(errorReason(error), "NO_ACTIVE_CART");
  }],
];

async function main() {
  let failed = 0;
  for (const [name, check] of steps) {
    try {
      await check();
      console.log(`ok   ${name}`);
    } catch (error) {
      failed += 1;
      console.log(`FAIL ${name}: ${error.message}`);
    }
  }
  console.log(`polyglot-node: ${steps.length - failed} passed, ${failed} failed`);
  client.close();
  process.exitCode = failed ? 1 : 0;
}

main();
