"""Bad input leaves as RFC 9457 problem+json with the field at fault, in Chinese and English."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field

from shared.errors import Problem, install_problem_handlers


class Reporter(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    phone: str = Field(pattern=r"^1\d{10}$")


class Report(BaseModel):
    content: str = Field(min_length=1, max_length=5000)
    anonymous: bool
    reporter: Reporter | None = None


@pytest.fixture(scope="module")
def app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/reports")
    def create(report: Report) -> dict[str, str]:
        if report.content == "twice":
            raise Problem(409, "该回执已评价，不能重复评价。")
        return {"ok": "yes"}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    return app


async def send(app: FastAPI, method: str, path: str, **kw: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path, **kw)  # type: ignore[arg-type]


async def test_validation_errors_name_each_field_in_chinese(app: FastAPI) -> None:
    resp = await send(app, "POST", "/reports",
                      json={"content": "x" * 5001, "reporter": {"name": "", "phone": "123"}})
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["title"] == "Validation Failed" and body["status"] == 422
    assert body["detail"] == "提交的数据有误，请检查后重试。"
    errors = {e["field"]: e["message"] for e in body["errors"]}
    assert errors == {
        "content": "长度不能超过 5000 个字符",
        "anonymous": "此项为必填项",
        "reporter.name": "长度不能少于 1 个字符",
        "reporter.phone": "格式不正确",
    }


async def test_domain_problems_keep_their_status_and_chinese_detail(app: FastAPI) -> None:
    resp = await send(app, "POST", "/reports", json={"content": "twice", "anonymous": True})
    assert resp.status_code == 409
    assert resp.json() == {"type": "https://minyi.example/problems/conflict", "title": "Conflict", "status": 409,
                           "detail": "该回执已评价，不能重复评价。", "instance": "/reports"}


async def test_unknown_paths_and_methods_are_problems_too(app: FastAPI) -> None:
    missing = await send(app, "GET", "/nowhere")
    assert missing.status_code == 404 and missing.json()["detail"] == "请求的资源不存在。"
    wrong = await send(app, "DELETE", "/reports")
    assert wrong.status_code == 405 and wrong.headers["content-type"] == "application/problem+json"


async def test_malformed_json_is_a_422_not_a_500(app: FastAPI) -> None:
    resp = await send(app, "POST", "/reports", content=b"{oops", headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["message"] == "不是有效的 JSON"


async def test_unexpected_errors_do_not_leak_internals(app: FastAPI) -> None:
    resp = await send(app, "GET", "/boom")
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/problem+json"
    assert "hunter2" not in resp.text and "RuntimeError" not in resp.text
    assert resp.json()["detail"] == "服务器内部错误，请稍后再试。"
