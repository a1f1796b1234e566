"""Bazel-style labels: ``//pkg/sub:name``, ``:name``, ``//pkg:all``, ``//pkg/...``, ``//...``."""

from __future__ import annotations

import re
import unicodedata

import msgspec

from mlbuild.engine.errors import UserError

# Letters and digits of any script (``\w`` is Unicode-aware), and a little punctuation. Labels
# are compared in NFC, so ``modèle`` typed either way is one target.
_PART = r"[\w.+=,@~-]+"
_NAME = re.compile(rf"^{_PART}$")
_PKG = re.compile(rf"^({_PART}(/{_PART})*)?$")
# A label names folders and files under the workspace and mlbuild-out/: each part must be a
# name a filesystem takes (255 bytes), with room for ``.value.safetensors`` after a target name.
MAX_PART_BYTES = 255
MAX_NAME_BYTES = 200
MAX_LABEL_CHARS = 1024
# The common shape, ASCII with no part starting with a dot (so no ``.``/``..``) and far below
# every length limit, is accepted without the general parser: a BUILD.py of thousands of
# targets parses thousands of labels on every build, no-ops included.
_SIMPLE_PART = r"[A-Za-z0-9_+=,@~-][A-Za-z0-9_.+=,@~-]{0,99}"
_SIMPLE = re.compile(rf"(?://({_SIMPLE_PART}(?:/{_SIMPLE_PART}){{0,7}})?)?:({_SIMPLE_PART})")


def check_name(name: str) -> str | None:
    """Why ``name`` cannot be a target name, or None when it can."""
    if not _NAME.fullmatch(name):
        return f"target name {_short(name)!r} may hold only letters, digits and _.+=,@~-"
    if name.startswith("."):
        # ``.`` and ``..`` would escape the package's folder; other dot names collide with
        # mlbuild-out/'s own files (``.mlbuild-results``).
        return f"target name {_short(name)!r} must not start with '.'"
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"target name {_short(name)!r} is longer than {MAX_NAME_BYTES} bytes"
    return None


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:40] + "…" + text[-10:]


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
    if not _PKG.fullmatch(pkg):
        raise UserError(f"invalid package in label {_short(text)!r}")
    for part in pkg.split("/") if pkg else ():
        if part in (".", ".."):
            raise UserError(f"invalid label {_short(text)!r}: '{part}' is not allowed in a package path "
                            "(labels name packages inside the workspace)")
        if len(part.encode()) > MAX_PART_BYTES:
            raise UserError(f"invalid label {_short(text)!r}: a package folder name is longer than {MAX_PART_BYTES} bytes")
    return pkg


def parse_label(text: str, current_package: str = "") -> Label:
    """Parse one concrete label; ``:name`` and ``name`` are relative to ``current_package``."""
    pattern = parse_pattern(text, current_package)
    if pattern.recursive or pattern.name is None:
        raise UserError(f"{text!r} names several targets; a single label is needed here")
    return Label(pattern.package, pattern.name)


def parse_pattern(text: str, current_package: str = "") -> Pattern:
    simple = _SIMPLE.fullmatch(text)
    if simple is not None and simple.group(2) != "all":
        pkg = simple.group(1)
        return Pattern(current_package if pkg is None and not text.startswith("//") else pkg or "", simple.group(2))
    return _parse_general(text, current_package)


def _parse_general(text: str, current_package: str) -> Pattern:
    text = unicodedata.normalize("NFC", text.strip())
    if not text:
        raise UserError("empty label")
    if len(text) > MAX_LABEL_CHARS:
        raise UserError(f"label {_short(text)!r} is {len(text)} characters long (at most {MAX_LABEL_CHARS})")
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
    problem = check_name(name)
    if problem:
        raise UserError(f"invalid label {_short(text)!r}: {problem}")
    return Pattern(pkg, name)
