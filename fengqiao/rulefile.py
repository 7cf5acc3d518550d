"""Rules kept as YAML files in the repo (containment policy, departments, …): read once at
start-up — a broken file fails then — and again whenever the file changes, keeping the last
valid version when a new one is broken, so an operator's typo never stops a center."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml

from fengqiao.errors import InvalidArgument

log = logging.getLogger(__name__)
T = TypeVar("T")


def read_yaml(path: Path, *, field: str) -> Any:
    """Read and parse a YAML rules file; ``field`` names the setting that points at it."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidArgument(field, f"无法读取规则文件 {path}：{exc}") from exc


class ReloadingFile(Generic[T]):
    """A rules file parsed by ``load``, reloaded when its size or mtime changes; never broken."""

    def __init__(self, path: Path, load: Callable[[Path], T], *, what: str) -> None:
        self._path = path
        self._load = load
        self._what = what
        self._stamp = self._stat()
        self._value = load(path)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> T:
        """The value of the file's latest valid version."""
        stamp = self._stat()
        if stamp == self._stamp:
            return self._value
        self._stamp = stamp  # each version is tried once: a broken file warns once, not per call
        try:
            value = self._load(self._path)
        except InvalidArgument as exc:
            log.warning("%s %s is invalid, keeping the previous version: %s", self._what, self._path, exc.message)
            return self._value
        log.info("%s %s reloaded", self._what, self._path)
        self._value = value
        return value
