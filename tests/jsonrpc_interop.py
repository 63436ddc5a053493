#!/usr/bin/python3
"""An independent JSON-RPC 2.0 implementation (Python standard library only) to check
that the jsonrpc-* transports speak the protocol, not just to themselves.

  client --binary B --transport T   plays the benchmark side: sets the link up as the
      suite's listener does, runs `B --peer --role=echo` on it and calls it: echo requests
      of several sizes, notifications, next requests, an unknown method, invalid JSON.
  server --transport T --mode M ADDRESS...   plays the peer: connects with the endpoint's
      addresses (and inherited descriptors) and serves; mode "echo" serves correctly
      (a greeting first), the others answer the first request wrongly in one way each.

Exit status 0 when every check held; otherwise a message on stderr and status 1.
Run by tests/jsonrpc_interop_test.cpp.
"""

import argparse
import base64
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

TOKEN_BYTES = 32


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def frame(obj=None, body=None, header=None):
    if body is None:
        body = json.dumps(obj, separators=(",", ":")).encode()
    if header is None:
        header = b"Content-Length: %d\r\n\r\n" % len(body)
    return header + body


class Stream:
    """Frames over two descriptors (pipes) or one (a socket)."""

    def __init__(self, rfd, wfd):
        self.rfd, self.wfd, self.buf = rfd, wfd, b""

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.wfd, view):]

    def send(self, obj):
        self.write(frame(obj))

    def _more(self):
        chunk = os.read(self.rfd, 1 << 20)
        self.buf += chunk
        return bool(chunk)

    def read(self):
        """The next message (parsed), or None at end of file between frames."""
        while b"\r\n\r\n" not in self.buf:
            if not self._more():
                check(not self.buf, "end of file in a header")
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        length = None
        for line in head.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            check(sep, "malformed header line %r" % line)
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            else:
                check(name.strip().lower() == b"content-type", "unknown header %r" % line)
        check(length is not None, "no Content-Length")
        while len(self.buf) < length:
            check(self._more(), "end of file in a body")
        body, self.buf = self.buf[:length], self.buf[length:]
        return json.loads(body.decode("utf-8"))


def b64(data):
    return base64.b64encode(data).decode("ascii")


def unb64(text):
    check(isinstance(text, str), "not a base64 string: %r" % (text,))
    data = base64.b64decode(text, validate=True)
    check(b64(data) == text, "not canonical base64")
    return data


# --------------------------------------------------------------------------------------
# The benchmark side, calling the suite's peer.

class Link:
    """The suite's listener, redone: the peer process connected over `transport`."""

    def __init__(self, binary, transport, max_size):
        self.dir = tempfile.mkdtemp(prefix="jsonrpc-interop-")  # 0700
        inherit, addresses, listener, token = [], [], None, None
        if transport == "jsonrpc-pipe":
            down_r, down_w = os.pipe()
            up_r, up_w = os.pipe()
            addresses, inherit = [str(down_r), str(up_w)], [down_r, up_w]
        else:
            token = secrets.token_hex(TOKEN_BYTES // 2).encode()
            token_r, token_w = os.pipe()
            os.write(token_w, token)
            os.close(token_w)
            if transport == "jsonrpc-uds":
                path = os.path.join(self.dir, "sock")
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                old = os.umask(0o177)
                try:
                    listener.bind(path)
                finally:
                    os.umask(old)
                addresses = [path]
            else:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.bind(("127.0.0.1", 0))
                addresses = ["127.0.0.1", str(listener.getsockname()[1])]
            listener.listen(1)
            listener.settimeout(20)
            addresses.append(str(token_r))
            inherit = [token_r]
        argv = [binary, "--peer", "--transport=" + transport, "--max-size=%d" % max_size,
                "--role=echo", "--setup-timeout-ms=20000"]
        argv += ["--address=" + a for a in addresses]
        self.proc = subprocess.Popen(argv, pass_fds=inherit, stderr=subprocess.PIPE)
        for fd in inherit:
            os.close(fd)
        if listener is None:
            self.sock = None
            self.io = Stream(up_r, down_w)
        else:
            self.sock, _ = listener.accept()
            listener.close()
            got = b""
            while len(got) < TOKEN_BYTES:
                chunk = self.sock.recv(TOKEN_BYTES - len(got))
                check(chunk, "the peer closed before its token")
                got += chunk
            check(got == token, "the peer presented %r, not the token" % got)
            self.io = Stream(self.sock.fileno(), self.sock.fileno())

    def close_and_status(self):
        """Closes our ends (the peer sees end of file) and returns its exit status."""
        if self.sock is not None:
            self.sock.close()
        else:
            os.close(self.io.rfd)
            os.close(self.io.wfd)
        try:
            _, err = self.proc.communicate(timeout=20)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.stderr = err.decode(errors="replace")
        return self.proc.returncode


def call(io, method, params, id_):
    msg = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        msg["params"] = params
    io.send(msg)
    reply = io.read()
    check(reply is not None, "%s %r: end of file instead of a response" % (method, id_))
    return reply


def expect_result(reply, id_, data):
    check(set(reply) == {"jsonrpc", "result", "id"}, "response members %s" % sorted(reply))
    check(reply["jsonrpc"] == "2.0", "jsonrpc %r" % reply["jsonrpc"])
    check(reply["id"] == id_ and type(reply["id"]) is type(id_),
          "id %r answers request %r" % (reply["id"], id_))
    got = unb64(reply["result"])
    check(got == data, "request %r: %d bytes came back for %d, or other bytes"
          % (id_, len(got), len(data)))


def expect_error(reply, id_, code):
    check(set(reply) == {"jsonrpc", "error", "id"}, "error response members %s" % sorted(reply))
    check(reply["id"] == id_, "error id %r for %r" % (reply["id"], id_))
    check(reply["error"].get("code") == code, "error %r, expected code %d"
          % (reply["error"], code))
    check(isinstance(reply["error"].get("message"), str), "error without a message")


def run_client(binary, transport):
    rng = random.Random(transport)
    max_size = (1 << 20) + 64
    link = Link(binary, transport, max_size)
    io = link.io
    next_id = 1
    # Echo requests of several sizes, 1 byte to 1 MiB, every byte value.
    for size in (1, 2, 3, 255, 4096, 65537, 1 << 20):
        data = bytes(rng.randrange(256) for _ in range(size)) if size < 70000 \
            else rng.randbytes(size)
        expect_result(call(io, "echo", [b64(data)], next_id), next_id, data)
        next_id += 1
    # A string id comes back as it went.
    expect_result(call(io, "echo", [b64(b"id")], "abc"), "abc", b"id")
    # A Content-Type header is part of the base protocol.
    body = json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [b64(b"ct")],
                       "id": next_id}).encode()
    io.write(frame(body=body, header=b"Content-Type: application/vscode-jsonrpc; charset=utf-8"
                                     b"\r\nContent-Length: %d\r\n\r\n" % len(body)))
    expect_result(io.read(), next_id, b"ct")
    next_id += 1
    # Notifications: never answered; the echo role sends each back, which waits for a
    # next request, in order.
    pushed = [rng.randbytes(n) for n in (5, 7, 100000)]
    for data in pushed:
        io.send({"jsonrpc": "2.0", "method": "push", "params": [b64(data)]})
    for data in pushed:
        expect_result(call(io, "next", None, next_id), next_id, data)
        next_id += 1
    status = link.close_and_status()
    check(status == 0, "the peer exited %d after end of file: %s" % (status, link.stderr))

    # An unknown method: -32601 with the request's id, then the peer gives up.
    link = Link(binary, transport, 4096)
    expect_error(call(link.io, "shutdown", [], 99), 99, -32601)
    status = link.close_and_status()
    check(status != 0, "the peer exited 0 after an unknown method")
    check("unknown method 'shutdown'" in link.stderr, "peer's stderr: " + link.stderr)

    # Invalid JSON: -32700 with a null id.
    link = Link(binary, transport, 4096)
    link.io.write(frame(body=b'{"jsonrpc":"2.0","method":'))
    reply = link.io.read()
    check(reply is not None, "no answer to invalid JSON")
    expect_error(reply, None, -32700)
    status = link.close_and_status()
    check(status != 0, "the peer exited 0 after invalid JSON")

    # Padding in the middle of the base64: -32602.
    link = Link(binary, transport, 4096)
    expect_error(call(link.io, "echo", ["Zg==Zg=="], 5), 5, -32602)
    status = link.close_and_status()
    check(status != 0, "the peer exited 0 after bad base64")


# --------------------------------------------------------------------------------------
# The peer's side, serving the suite's client.

def connect(transport, addresses):
    if transport == "jsonrpc-pipe":
        return None, Stream(int(addresses[0]), int(addresses[1]))
    token = os.read(int(addresses[-1]), 4096)
    os.close(int(addresses[-1]))
    if transport == "jsonrpc-uds":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addresses[0])
    else:
        s = socket.create_connection((addresses[0], int(addresses[1])))
    s.sendall(token)
    return s, Stream(s.fileno(), s.fileno())


GREETING = b"hello from python"


def serve_echo(io, final_push_size):
    """Serves until end of file, checking each request. Greets first. With
    final_push_size, the last message must be a notification of that many bytes."""
    outbox, pending, last_id, msg = [GREETING], [], 0, None
    while True:
        last, msg = msg, io.read()
        if msg is None:
            if final_push_size is not None:
                check(last is not None and last.get("method") == "push"
                      and len(unb64(last["params"][0])) == final_push_size,
                      "the last message was not a push of %d bytes: %r"
                      % (final_push_size, str(last)[:100]))
            return
        check(msg.get("jsonrpc") == "2.0", "jsonrpc %r" % msg.get("jsonrpc"))
        method = msg.get("method")
        if method in ("echo", "next"):
            id_ = msg.get("id")
            check(isinstance(id_, int) and id_ > last_id, "id %r after %r" % (id_, last_id))
            last_id = id_
            pending.append(id_)
        else:
            check(method == "push" and "id" not in msg, "not a call: %r" % msg)
        if method != "next":
            params = msg.get("params")
            check(isinstance(params, list) and len(params) == 1, "params %r" % params)
            outbox.append(unb64(params[0]))
        while pending and outbox:
            io.send({"jsonrpc": "2.0", "result": b64(outbox.pop(0)), "id": pending.pop(0)})


# What each faulty mode answers the first request with: a function of its id, giving
# the bytes to write; None closes the link instead.
def ok_frame(id_, **changes):
    msg = {"jsonrpc": "2.0", "result": b64(b"x"), "id": id_}
    msg.update(changes)
    return frame({k: v for k, v in msg.items() if v is not Ellipsis})


FAULTS = {
    "error": lambda i: frame({"jsonrpc": "2.0", "error": {"code": -32000,
                                                          "message": "server says no"},
                              "id": i}),
    "badjson": lambda i: frame(body=b'{"jsonrpc":"2.0","result":'),
    "wrongid": lambda i: ok_frame(i + 1),
    "badversion": lambda i: ok_frame(i, jsonrpc="1.0"),
    "noresult": lambda i: ok_frame(i, result=Ellipsis),
    "badbase64": lambda i: ok_frame(i, result="eA=x"),
    "badheader": lambda i: b"Content-Lenght: 5\r\n\r\n" + b"{}{}{",
    "hugelength": lambda i: b"Content-Length: 999999999999\r\n\r\n{",
    "longheader": lambda i: b"Content-Type: " + b"x" * 2000 + b"\r\n" + ok_frame(i),
    "midframe": lambda i: b"Content-Length: 100\r\n\r\n" + b'{"jsonrpc":"2.0"',
    "midheader": lambda i: b"Content-Length: 1",
    "eof": lambda i: None,
}


def run_server(transport, mode, addresses, final_push_size):
    sock, io = connect(transport, addresses)
    if mode == "echo":
        serve_echo(io, final_push_size)
        return
    msg = io.read()
    check(msg is not None and "id" in msg, "no request came: %r" % msg)
    data = FAULTS[mode](msg["id"])
    if data is not None:
        io.write(data)
    if sock is not None:
        sock.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client")
    c.add_argument("--binary", required=True)
    c.add_argument("--transport", required=True)
    s = sub.add_parser("server")
    s.add_argument("--transport", required=True)
    s.add_argument("--mode", required=True, choices=["echo"] + sorted(FAULTS))
    s.add_argument("--final-push-size", type=int)
    s.add_argument("addresses", nargs="+")
    a = p.parse_args()
    signal.alarm(60)  # nothing here waits for ever, whatever the other side does
    try:
        if a.cmd == "client":
            run_client(a.binary, a.transport)
        else:
            run_server(a.transport, a.mode, a.addresses, a.final_push_size)
    except (Failed, ValueError, OSError) as e:
        print("jsonrpc_interop %s %s: %s" % (a.cmd, a.transport, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
