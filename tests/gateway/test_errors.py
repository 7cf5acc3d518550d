"""Validation errors reach an operator in Chinese, naming each field (issue 22: no "Field required")."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

import pytest
from pydantic import BaseModel, Field, ValidationError, field_validator

from gateway.errors import invalid_request


class _Form(BaseModel):
    direction: Literal["in", "out", ""]
    page_size: int = Field(ge=1, le=500)
    title: str = Field(max_length=3)
    deadline: dt.datetime
    grid: str
    tags: list[str] = Field(default_factory=list, max_length=2)

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: str) -> str:
        raise ValueError("网格编号应为 6 位数字")


def _problems(body: object) -> str:
    with pytest.raises(ValidationError) as failed:
        _Form.model_validate(body)
    return invalid_request(failed.value.errors())


def test_every_field_is_named_with_its_problem_in_chinese() -> None:
    body = {"direction": "up", "page_size": 0, "title": "四个字的", "deadline": "明天", "grid": "1", "tags": [1, 2, 3]}
    detail = _problems(body)
    assert detail.startswith("请求格式错误。")
    assert "字段 direction：应为 in、out、（空） 之一" in detail
    assert "字段 page_size：应不小于 1" in detail
    assert "字段 title：不能超过 3 字" in detail
    assert "字段 deadline：应为时间" in detail
    assert "字段 grid：网格编号应为 6 位数字" in detail  # a validator's own Chinese message
    assert "字段 tags：不能超过 2 项" in detail


def test_no_english_reaches_the_operator() -> None:
    detail = _problems({"page_size": "many", "title": 5, "tags": "x"})
    assert "字段 direction：必填" in detail and "字段 page_size：应为整数" in detail
    fields = {"direction", "page_size", "title", "deadline", "grid", "tags"}
    english = set(re.findall(r"[A-Za-z_]{2,}", detail)) - fields
    assert not english, english
