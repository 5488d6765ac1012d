import httpx

from tests.conftest import BACKEND_SECRET


async def test_add_then_status_then_next(client: httpx.AsyncClient) -> None:
    r = await client.get("/addJob", params={"prompt": "hällo <&> world", "number": "2", "resolution": "768x576", "captcha": "good-1"})
    assert r.status_code == 200, r.content
    token = r.json()
    assert r.content == f'"{token}"\n'.encode()
    r = await client.get("/getJobStatus", params={"token": token})
    assert r.status_code == 200
    print(r.content, r.headers)
    r = await client.get("/getNextJob", params={"secret": BACKEND_SECRET})
    print(r.content, r.headers)
    r = await client.get("/setJobStatus", params={"secret": BACKEND_SECRET, "token": token, "state": "pending"})
    print(r.content, r.headers)
    r = await client.options("/addJob")
    print(r.content, r.headers)
    r = await client.get("/openapi.json")
    assert "/addJob" in r.json()["paths"]
