"""A real gRPC server and client (grpcio, the reference implementation) for Tenet's gRPC
pass-through test. No generated code: the method carries raw bytes.

  grpc_peer.py server                          prints its h2c port, serves /tenet.test.Echo/Say
  grpc_peer.py client ADDR AUTHORITY CA CERT KEY MESSAGE
      calls Say over TLS with a client certificate; prints the reply; exit 1 on an RPC error
      with the status code on stderr."""
import sys
from concurrent import futures

import grpc

METHOD = "/tenet.test.Echo/Say"


def serve():
    def say(request, context):
        md = dict(context.invocation_metadata())
        context.set_trailing_metadata((("x-echo-path", METHOD),))
        return b"hello " + request + b" from " + md.get("x-tenet-principal", "nobody").encode()

    handler = grpc.method_handlers_generic_handler(
        "tenet.test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def client(addr, authority, ca, cert, key, message):
    creds = grpc.ssl_channel_credentials(
        root_certificates=open(ca, "rb").read(),
        private_key=open(key, "rb").read(),
        certificate_chain=open(cert, "rb").read())
    options = (("grpc.ssl_target_name_override", authority), ("grpc.default_authority", authority))
    with grpc.secure_channel(addr, creds, options) as channel:
        call = channel.unary_unary(METHOD)
        try:
            reply = call(message.encode(), timeout=10)
        except grpc.RpcError as e:
            print(f"{e.code().name}: {e.details()}", file=sys.stderr)
            sys.exit(1)
        print(reply.decode())


if sys.argv[1] == "server":
    serve()
else:
    client(*sys.argv[2:8])
