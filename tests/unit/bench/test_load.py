"""The benchmarks' open-loop generator against a real local HTTP server."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bench.load import load_session, open_loop


async def _server(received: list[dict[str, Any]]) -> tuple[web.AppRunner, str]:
    async def score(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/v1/scores", score)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def test_fresh_makes_every_request_a_new_application_and_cycling_alone_replays() -> None:
    bodies = [{"application_id": f"A-{k}", "member_id": f"M-{k}"} for k in range(3)]
    received: list[dict[str, Any]] = []
    runner, url = await _server(received)

    async def sent(client: Any, fresh: str | None) -> tuple[int, list[str]]:
        received.clear()
        result = await open_loop(
            client, "/v1/scores", bodies, rate=200, duration=0.05, headers={}, fresh=fresh
        )
        return result.ok, [b["application_id"] for b in received]

    try:
        async with load_session(url) as client:
            plain, replays = await sent(client, None)
            first, once = await sent(client, "application_id")
            _, again = await sent(client, "application_id")
    finally:
        await runner.cleanup()
    assert plain == first == 10
    assert len(set(replays)) == 3  # ten requests, three applications: seven replays
    assert len(set(once)) == 10 and set(once).isdisjoint(again)  # none repeated, across runs too
    assert all(i.split(".")[0] in {"A-0", "A-1", "A-2"} for i in once)  # the member's own body
    assert {b["member_id"] for b in received} <= {"M-0", "M-1", "M-2"}
