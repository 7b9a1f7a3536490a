"""FastAPI + uvicorn peer for the Sluice benchmark (the seed chapter's stack).

Same endpoints and bytes as `sluice serve --enable-bench` for the workloads:
  POST /v1/bench/tokens {"tokens":T,"bytes":B,"rate":R}  SSE via StreamingResponse
       rate > 0: asyncio.sleep until each event's due time; rate 0: yield
       batches of events as fast as the server takes them.
  GET  /v1/streams/<id>/events subscribe (an asyncio.Queue per subscriber);
  POST the same path: publish.   GET /healthz
Usage: python3 bench/peers/fastapi_server.py PORT   (one uvicorn worker)
"""
import asyncio
import json
import sys
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

app = FastAPI()
channels = {}  # id -> [set of queues, seq]
HEAD = {"Cache-Control": "no-cache"}


def realtime_us():
    return time.time_ns() // 1000


def event(n, ts, text):
    return f'id: {n}\ndata: {{"seq":{n},"ts":{ts},"t":"{text}"}}\n\n'


@app.get("/healthz")
async def healthz():
    return {"ok": True}


@app.post("/v1/bench/tokens")
async def tokens(request: Request):
    o = json.loads(await request.body())
    T, B, R = int(o.get("tokens", 100)), int(o.get("bytes", 8)), float(o.get("rate", 0))
    text = "".join(chr(97 + i % 26) for i in range(B))

    async def paced():
        start = time.monotonic()
        for n in range(1, T + 1):
            delay = start + (n - 1) / R - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            yield event(n, realtime_us(), text)

    async def unpaced():
        n = 1
        while n <= T:
            ts = realtime_us()
            parts = []
            size = 0
            while size < 65536 and n <= T:
                e = event(n, ts, text)
                parts.append(e)
                size += len(e)
                n += 1
            yield "".join(parts)

    return StreamingResponse(paced() if R > 0 else unpaced(), media_type="text/event-stream",
                             headers=HEAD)


@app.get("/v1/streams/{sid}/events")
async def subscribe(sid: str):
    ch = channels.setdefault(sid, [set(), 0])
    q = asyncio.Queue()
    ch[0].add(q)

    async def gen():
        try:
            yield ":\n\n"  # send the head at once
            while True:
                yield await q.get()
        finally:
            ch[0].discard(q)

    return StreamingResponse(gen(), media_type="text/event-stream", headers=HEAD)


@app.post("/v1/streams/{sid}/events")
async def publish(sid: str, request: Request):
    ch = channels.setdefault(sid, [set(), 0])
    ch[1] += 1
    ev = f"id: {ch[1]}\ndata: {(await request.body()).decode()}\n\n"
    for q in ch[0]:
        q.put_nowait(ev)
    return {"sequence": ch[1]}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
