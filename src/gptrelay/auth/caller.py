"""Who is calling: what the key check finds, kept on the request for the steps after it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """The holder of the key a request came with.

    ``name`` is what usage records and logs call it: ``owner`` for
    ``AUTHORIZATION_KEY`` (no limits), ``anonymous`` on a relay without keys.
    """

    name: str


OWNER = Caller("owner")
ANONYMOUS = Caller("anonymous")
