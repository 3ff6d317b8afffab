"""Opens N mTLS connections to a TLS server, sends one request on each (so the server has
parsed and answered), then keeps them all open and idle until stdin closes. Used to measure a
gateway's resident memory with many idle connections.

usage: hold_connections.py HOST PORT SNI CERT KEY CAFILE N"""
import asyncio
import ssl
import sys

host, port, sni, cert, key, cafile, n = sys.argv[1:8]
port, n = int(port), int(n)


async def one(ctx, sem, conns):
    async with sem:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=sni)
        writer.write(f"GET / HTTP/1.1\r\nHost: {sni}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        conns.append(writer)


async def main():
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.load_cert_chain(cert, key)
    sem = asyncio.Semaphore(200)
    conns = []
    await asyncio.gather(*(one(ctx, sem, conns) for _ in range(n)))
    print(f"holding {len(conns)} connections", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in conns:
        w.close()


asyncio.run(main())
