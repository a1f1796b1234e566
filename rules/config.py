"""The base class of step configurations."""

import msgspec


class Config(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Base of a rule's config: a frozen msgspec Struct.

    Subclass it with typed fields and defaults; a target's ``config={...}`` is converted to it
    (unknown or mistyped fields are an error naming the target).
    """
