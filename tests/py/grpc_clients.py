"""Independent gRPC clients for meshid's Unix sockets, run by the Rust
end-to-end tests with $MESHID_TEST_PYTHON. None of them sets a channel
option: gRPC C-core then sends the socket path as :authority, which is
exactly what the servers must accept.

  grpc_clients.py workload-fetch SOCKET   plain grpcio: FetchX509SVID
  grpc_clients.py sds-fetch SOCKET        plain grpcio: SDS FetchSecrets
  grpc_clients.py admin-bundle SOCKET     plain grpcio: CA Admin/GetBundle
  grpc_clients.py pyspiffe SOCKET AUD     pyspiffe: X.509-SVID, JWT-SVID,
                                          X.509 and JWT bundles

Each prints one line: `OK ...` or `<STATUS_CODE> <details>`.
"""
import json
import sys

import grpc


def raw_call(socket, method, metadata, stream):
    channel = grpc.insecure_channel("unix:" + socket)
    ident = lambda b: b  # noqa: E731 - raw protobuf bytes both ways
    try:
        if stream:
            call = channel.unary_stream(method, request_serializer=ident, response_deserializer=ident)
            for msg in call(b"", metadata=metadata, timeout=20):
                return "OK %d" % len(msg)
            return "EMPTY stream ended"
        call = channel.unary_unary(method, request_serializer=ident, response_deserializer=ident)
        return "OK %d" % len(call(b"", metadata=metadata, timeout=20))
    except grpc.RpcError as e:
        return "%s %s" % (e.code().name, e.details())


def pyspiffe(socket, audience):
    from spiffe import WorkloadApiClient

    with WorkloadApiClient(socket_path="unix://" + socket) as client:
        svid = client.fetch_x509_svid(timeout=20)
        jwt = client.fetch_jwt_svid(audience={audience}, timeout=20)
        x509_bundles = client.fetch_x509_bundles(timeout=20)
        jwt_bundles = client.fetch_jwt_bundles(timeout=20)
        td = svid.spiffe_id.trust_domain
        return "OK " + json.dumps(
            {
                "x509_spiffe_id": str(svid.spiffe_id),
                "x509_chain_len": len(svid.cert_chain),
                "jwt_spiffe_id": str(jwt.spiffe_id),
                "jwt_audience": sorted(jwt.audience),
                "x509_bundle_roots": len(x509_bundles.get_bundle_for_trust_domain(td).x509_authorities),
                "jwt_bundle_keys": len(jwt_bundles.get_bundle_for_trust_domain(td).jwt_authorities),
            },
            sort_keys=True,
        )


def main():
    mode, socket = sys.argv[1], sys.argv[2]
    if mode == "workload-fetch":
        out = raw_call(socket, "/SpiffeWorkloadAPI/FetchX509SVID", (("workload.spiffe.io", "true"),), True)
    elif mode == "sds-fetch":
        out = raw_call(socket, "/envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets", (), False)
    elif mode == "admin-bundle":
        out = raw_call(socket, "/meshid.ca.v1.Admin/GetBundle", (), False)
    elif mode == "pyspiffe":
        try:
            out = pyspiffe(socket, sys.argv[3])
        except Exception as e:  # report, do not crash: the test prints it
            out = "ERROR %s: %s" % (type(e).__name__, e)
    else:
        sys.exit("unknown mode " + mode)
    print(out.replace("\n", " "))


if __name__ == "__main__":
    main()
