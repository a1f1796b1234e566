"""Bazel-style labels: ``//pkg/sub:name``, ``:name``, ``//pkg:all``, ``//pkg/...``, ``//...``."""

from __future__ import annotations

import re

import msgspec

from mlbuild.engine.errors import UserError

_NAME = re.compile(r"^[A-Za-z0-9_.+=,@~-]+$")
_PKG = re.compile(r"^([A-Za-z0-9_.+=,@~-]+(/[A-Za-z0-9_.+=,@~-]+)*)?$")


class Label(msgspec.Struct, frozen=True, order=True):
    package: str
    name: str

    def __str__(self) -> str:
        return f"//{self.package}:{self.name}"


class Pattern(msgspec.Struct, frozen=True):
    """A label or a set of them: a single target, all of a package, or a package subtree."""

    package: str
    name: str | None  # None: every target of the package (``:all``)
    recursive: bool = False  # ``/...``

    def matches(self, label: Label) -> bool:
        if self.recursive:
            return not self.package or label.package == self.package or label.package.startswith(self.package + "/")
        if label.package != self.package:
            return False
        return self.name is None or self.name == label.name

    def __str__(self) -> str:
        if self.recursive:
            return f"//{self.package}/..." if self.package else "//..."
        return f"//{self.package}:{self.name or 'all'}"


def _check_package(pkg: str, text: str) -> str:
    if not _PKG.match(pkg):
        raise UserError(f"invalid package in label {text!r}")
    return pkg


def parse_label(text: str, current_package: str = "") -> Label:
    """Parse one concrete label; ``:name`` and ``name`` are relative to ``current_package``."""
    pattern = parse_pattern(text, current_package)
    if pattern.recursive or pattern.name is None:
        raise UserError(f"{text!r} names several targets; a single label is needed here")
    return Label(pattern.package, pattern.name)


def parse_pattern(text: str, current_package: str = "") -> Pattern:
    text = text.strip()
    if not text:
        raise UserError("empty label")
    if text.startswith("//"):
        body = text[2:]
        if body == "..." or body.endswith("/..."):
            return Pattern(_check_package(body[:-3].rstrip("/"), text), None, recursive=True)
        if ":" in body:
            pkg, name = body.split(":", 1)
        else:
            pkg, name = body, body.rsplit("/", 1)[-1]
            if not name:
                raise UserError(f"invalid label {text!r}: use //pkg:name")
    else:
        if text == "..." or text.endswith("/..."):
            sub = text[:-3].rstrip("/")
            pkg = "/".join(p for p in (current_package, sub) if p)
            return Pattern(_check_package(pkg, text), None, recursive=True)
        pkg = current_package
        name = text[1:] if text.startswith(":") else text
    _check_package(pkg, text)
    if name == "all":
        return Pattern(pkg, None)
    if not _NAME.match(name):
        raise UserError(f"invalid target name in label {text!r}")
    return Pattern(pkg, name)
