"""Run code in a kernel started by a running JupyterLab, over its REST and websocket API, the
way the browser does: POST /api/kernels, execute on /api/kernels/ID/channels, DELETE the kernel.

    python lab_client.py --port 8888 --code 'import os; print(os.geteuid())'

The token is read from the service's /etc/ebpf_nb/lab.env (root or the service's account), never
taken on the command line. Prints the kernel's stdout; exits 1 on an error reply, 2 when the kernel never answers."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect


def message(code: str, session: str) -> dict:
    return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request",
                       "username": "vmtest", "session": session, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}


def service_token(path: str = "/etc/ebpf_nb/lab.env") -> str:
    with open(path) as env:
        for line in env:
            if line.startswith("EBPF_NB_TOKEN="):
                return line.strip().split("=", 1)[1]
    raise SystemExit(f"lab_client: no EBPF_NB_TOKEN in {path}")


async def run(host: str, port: int, token: str, code: str, timeout: float) -> tuple[str, str]:
    base = f"{host}:{port}"
    auth = {"Authorization": f"token {token}"}
    http = AsyncHTTPClient()
    reply = await http.fetch(HTTPRequest(f"http://{base}/api/kernels", method="POST",
                                         headers=auth, body=json.dumps({"name": "python3"})))
    kernel_id = json.loads(reply.body)["id"]
    try:
        session = uuid.uuid4().hex
        ws = await websocket_connect(HTTPRequest(
            f"ws://{base}/api/kernels/{kernel_id}/channels?session_id={session}", headers=auth))
        request = message(code, session)
        ws.write_message(json.dumps(request))
        out: list[str] = []
        status, idle = "timeout", False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while status == "timeout" or not idle:  # the reply and the last output race
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            raw = await asyncio.wait_for(ws.read_message(), remaining)
            if raw is None:
                break
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                out.append("\n".join(msg["content"]["traceback"]))
            elif kind == "execute_reply":
                status = msg["content"]["status"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        ws.close()
        return "".join(out), status
    finally:
        await http.fetch(HTTPRequest(f"http://{base}/api/kernels/{kernel_id}", method="DELETE",
                                     headers=auth))


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--port", type=int, default=8888)
    args.add_argument("--host", default="127.0.0.1", help="the address JupyterLab listens on")
    args.add_argument("--code", required=True)
    args.add_argument("--timeout", type=float, default=300)
    ns = args.parse_args()
    try:
        out, status = asyncio.run(run(ns.host, ns.port, service_token(), ns.code, ns.timeout))
    except asyncio.TimeoutError:
        out, status = "", "timeout"
    sys.stdout.write(out)
    if status != "ok":
        print(f"lab_client: execute status {status!r}", file=sys.stderr)
        return 2 if status == "timeout" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
