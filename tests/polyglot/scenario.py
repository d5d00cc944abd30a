"""A client generated at test time from proto/cart/v1/cart.proto runs a full cart scenario.

Usage: scenario.py <grpc host:port> <repo root> <http host:port>

Proves the proto is usable from another language: stubs come from grpcio-tools, nothing
is hand-written, and errors are read through the standard google.rpc.Status details. Then
reads `/metrics` with the Prometheus project's own OpenMetrics parser (prometheus_client)
and checks the request counters against the calls the scenario made.
"""

import importlib
import json
import re
import sys
import tempfile
import urllib.request

import grpc
from grpc_status import rpc_status
from google.rpc import error_details_pb2
from grpc_tools import protoc
from prometheus_client.openmetrics.parser import text_string_to_metric_families


def generate(repo_root: str, out_dir: str):
    import grpc_tools

    well_known = grpc_tools.__path__[0] + "/_proto"
    code = protoc.main(
        [
            "protoc",
            f"-I{repo_root}/proto",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            f"{repo_root}/proto/cart/v1/cart.proto",
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with {code}")
    sys.path.insert(0, out_dir)
    return importlib.import_module("cart.v1.cart_pb2"), importlib.import_module("cart.v1.cart_pb2_grpc")


def error_reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "cart.v1", info.domain
            return info.reason
    raise AssertionError("no ErrorInfo in the status details")


def main() -> int:
    target, repo_root, http_target = sys.argv[1], sys.argv[2], sys.argv[3]
    out_dir = tempfile.mkdtemp(prefix="cart-polyglot-")
    pb, pb_grpc = generate(repo_root, out_dir)
    stub = pb_grpc.CartServiceStub(grpc.insecure_channel(target))
    results = []

    def step(name, check):
        try:
            check()
            results.append((name, None))
            print(f"ok   {name}")
        except Exception as exc:  # report every step, then fail
            results.append((name, exc))
            print(f"FAIL {name}: {exc!r}")

    state = {}

    def create():
        cart = stub.Create(pb.CreateRequest(currency="USD", customer_id="py", metadata={"lang": "python"}), timeout=10)
        assert len(cart.id) == 24 and cart.version == 1 and cart.hmac, cart
        assert cart.status == pb.CART_STATUS_ACTIVE
        state["cart"] = cart

    def add():
        cart = stub.AddItems(
            pb.AddItemsRequest(
                cart_id=state["cart"].id,
                items=[pb.NewItem(sku="PY-1", quantity=2, unit_price=1999), pb.NewItem(sku="PY-2", quantity=1, unit_price=500)],
            ),
            timeout=10,
        )
        assert (cart.item_count, cart.unique_item_count, cart.subtotal, cart.total) == (3, 2, 4498, 4498), cart

    def get():
        cart = stub.Get(pb.GetRequest(cart_id=state["cart"].id), timeout=10)
        assert [(i.sku, i.quantity) for i in cart.items] == [("PY-1", 2), ("PY-2", 1)], cart.items
        assert cart.metadata["lang"] == "python"

    def clear():
        response = stub.Clear(pb.ClearRequest(cart_id=state["cart"].id, reason="customer_requested"), timeout=10)
        assert response.items_cleared == 3, response
        assert response.cart.total == 0 and not response.cart.items
        assert response.cart.hmac == state["cart"].hmac and response.cart.HasField("cleared_at")

    def delete():
        stub.AddItems(pb.AddItemsRequest(cart_id=state["cart"].id, items=[pb.NewItem(sku="PY-3", quantity=1, unit_price=100)]), timeout=10)
        response = stub.Delete(pb.DeleteRequest(cart_id=state["cart"].id, order_number="PY-ORDER-1"), timeout=10)
        assert response.cart.status == pb.CART_STATUS_DELETED and response.cart.order_number == "PY-ORDER-1"

    def error_with_reason():
        try:
            stub.AddItems(pb.AddItemsRequest(cart_id=state["cart"].id, items=[pb.NewItem(sku="X", quantity=1)]), timeout=10)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.code()
            assert error_reason(error) == "CART_DELETED"
            return
        raise AssertionError("a deleted cart accepted items")

    def remove():
        other = stub.Create(pb.CreateRequest(currency="EUR", items=[pb.NewItem(sku="R", quantity=4, unit_price=1)]), timeout=10)
        response = stub.Remove(pb.RemoveRequest(cart_id=other.id), timeout=10)
        assert response.items_removed == 4, response
        try:
            stub.Get(pb.GetRequest(cart_id=other.id), timeout=10)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND and error_reason(error) == "CART_NOT_FOUND"
            return
        raise AssertionError("a removed cart is still readable")

    def metrics():
        with urllib.request.urlopen(f"http://{http_target}/metrics", timeout=10) as response:
            content_type = response.headers["Content-Type"]
            text = response.read().decode()
        assert content_type.startswith("application/openmetrics-text"), content_type
        samples = {}
        types = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

        def requests(method, outcome="OK"):
            labels = {"interface": "grpc", "dialect": "", "method": method, "outcome": outcome}
            return samples.get(("cart_requests_total", tuple(sorted(labels.items()))), 0)

        expected = {
            ("Create", "OK"): 2,
            ("AddItems", "OK"): 2,
            ("AddItems", "CART_DELETED"): 1,
            ("Get", "OK"): 1,
            ("Get", "CART_NOT_FOUND"): 1,
            ("Clear", "OK"): 1,
            ("Delete", "OK"): 1,
            ("Remove", "OK"): 1,
        }
        counted = {key: requests(*key) for key in expected}
        assert counted == expected, counted
        clear_labels = tuple(sorted({"interface": "grpc", "dialect": "", "method": "Clear"}.items()))
        assert samples[("cart_request_duration_seconds_count", clear_labels)] == 1
        assert samples[("cart_request_duration_seconds_bucket", tuple(sorted(dict(clear_labels, le="+Inf").items())))] == 1
        assert types["cart_requests"] == "counter" and types["cart_request_duration_seconds"] == "histogram"
        assert samples[("cart_in_flight_requests", ())] == 0
        assert types["cart_build"] == "info"
        if sys.platform.startswith("linux"):
            assert samples[("process_resident_memory_bytes", ())] > 0
            assert samples[("process_open_fds", ())] > 0
            assert ("process_cpu_seconds_total", ()) in samples

    def retries_with_request_ids():
        # The retry policy the README offers, as a real gRPC client loads it.
        readme = open(f"{repo_root}/README.md").read()
        config = re.search(r"```json\n(\{.*?\"methodConfig\".*?\})\n```", readme, re.S).group(1)
        json.loads(config)
        channel = grpc.insecure_channel(
            target, options=[("grpc.service_config", config), ("grpc.enable_retries", 1)]
        )
        retrying = pb_grpc.CartServiceStub(channel)
        create = pb.CreateRequest(currency="USD", request_id="py-create-0b6e")
        first = retrying.Create(create)
        assert retrying.Create(create) == first, "a resent Create made another cart"
        clear = pb.ClearRequest(cart_id=first.id, reason="py", request_id="py-clear-51d2")
        retrying.AddItems(pb.AddItemsRequest(cart_id=first.id, items=[pb.NewItem(sku="A", quantity=2, unit_price=10)]))
        cleared = retrying.Clear(clear)
        retrying.AddItems(pb.AddItemsRequest(cart_id=first.id, items=[pb.NewItem(sku="B", quantity=1, unit_price=10)]))
        assert retrying.Clear(clear) == cleared and cleared.items_cleared == 2
        assert [i.sku for i in retrying.Get(pb.GetRequest(cart_id=first.id)).items] == ["B"]
        try:
            retrying.Clear(pb.ClearRequest(cart_id=first.id, reason="other", request_id="py-clear-51d2"))
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error_reason(error) == "REQUEST_ID_REUSED"
            return
        raise AssertionError("a reused request id was accepted")

    def expect_failure(call, code, reason):
        try:
            call()
        except grpc.RpcError as error:
            assert error.code() == code and error_reason(error) == reason, (error.code(), error_reason(error))
            return
        raise AssertionError(f"expected {reason}")

    def freeze_then_delete():
        cart = stub.Create(pb.CreateRequest(currency="USD", items=[pb.NewItem(sku="F", quantity=1, unit_price=700)]), timeout=10)
        frozen = stub.Freeze(pb.FreezeRequest(cart_id=cart.id, reason="checkout"), timeout=10)
        assert frozen.status == pb.CART_STATUS_FROZEN and frozen.freeze_reason == "checkout", frozen
        assert frozen.HasField("frozen_at") and frozen.version == cart.version + 1
        again = stub.Freeze(pb.FreezeRequest(cart_id=cart.id, reason="checkout"), timeout=10)
        assert again.version == frozen.version, "a second Freeze bumped the version"
        expect_failure(
            lambda: stub.AddItems(pb.AddItemsRequest(cart_id=cart.id, items=[pb.NewItem(sku="G", quantity=1)]), timeout=10),
            grpc.StatusCode.FAILED_PRECONDITION,
            "CART_FROZEN",
        )
        done = stub.Delete(pb.DeleteRequest(cart_id=cart.id, order_number="PY-ORDER-2"), timeout=10)
        assert done.cart.status == pb.CART_STATUS_DELETED and done.cart.item_count == 1, done

    def guest_login_merge():
        customer = f"py-customer-{state['cart'].id}"
        mine = stub.Create(pb.CreateRequest(currency="USD", customer_id=customer, items=[pb.NewItem(sku="M", quantity=1, unit_price=100)]), timeout=10)
        guest = stub.Create(pb.CreateRequest(currency="USD", items=[pb.NewItem(sku="M", quantity=2, unit_price=100), pb.NewItem(sku="N", quantity=1, unit_price=50)]), timeout=10)
        request = pb.MergeRequest(source_cart_id=guest.id, customer_id=customer, mode=pb.MERGE_MODE_SUM, request_id="py-login-1")
        merged = stub.Merge(request, timeout=10)
        assert merged.cart.id == mine.id and merged.source_cart_id == guest.id and merged.lines_merged == 2, merged
        assert [(i.sku, i.quantity) for i in merged.cart.items] == [("M", 3), ("N", 1)], merged.cart.items
        assert stub.Merge(request, timeout=10).cart.items == merged.cart.items, "a retried Merge added again"
        tombstone = stub.Get(pb.GetRequest(cart_id=guest.id), timeout=10)
        assert tombstone.status == pb.CART_STATUS_MERGED and tombstone.merged_into == mine.id, tombstone
        assert stub.GetActiveCart(pb.GetActiveCartRequest(customer_id=customer), timeout=10).id == mine.id
        expect_failure(
            lambda: stub.GetActiveCart(pb.GetActiveCartRequest(customer_id=customer + "-nobody"), timeout=10),
            grpc.StatusCode.NOT_FOUND,
            "NO_ACTIVE_CART",
        )

    for name, check in [
        ("create", create),
        ("add items", add),
        ("get", get),
        ("clear", clear),
        ("delete", delete),
        ("error carries ErrorInfo reason", error_with_reason),
        ("remove", remove),
        # Before the retries, whose resends would count too: the counts are exact.
        ("metrics count every call", metrics),
        ("retry policy and request ids", retries_with_request_ids),
        ("freeze, then delete (checkout)", freeze_then_delete),
        ("guest cart merged at login", guest_login_merge),
    ]:
        step(name, check)
    failed = sum(1 for _, exc in results if exc)
    print(f"polyglot: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
