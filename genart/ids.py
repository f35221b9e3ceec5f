"""The one pattern for ids that cross a boundary: bandit test, segment, arm, exposure and member ids.

The bandit service refuses an id that does not match it (a 422), so everything that names a test
checks ids the same way before anything is written (the review app's hand-off, ``Tester.create_test``):
a test the service cannot address would never get traffic. Letters, digits and ``. _ : @ / + = -``
cover slugs, UUIDs, e-mail addresses and path-like names; spaces, control characters (NUL), quotes
and ``< >`` are refused, so an id is safe in a URL path, a log line, HTML and every SQL backend.
"""

from __future__ import annotations

import re

from genart.errors import InvalidArgumentError

#: What every external id matches (for pydantic's ``Field(pattern=...)`` and :func:`check_id`).
ID_PATTERN = r"^[A-Za-z0-9._:@/+=-]+$"
#: The longest id (the store's id columns are ``String(128)``).
ID_MAX_LENGTH = 128

_ID = re.compile(ID_PATTERN)
_EXPECTED = (f"1 to {ID_MAX_LENGTH} letters, digits or . _ : @ / + = - "
             "(no spaces, quotes, < > or control characters)")


def is_valid_id(value: object) -> bool:
    """Whether ``value`` is a string the bandit service accepts as an id."""
    return isinstance(value, str) and 0 < len(value) <= ID_MAX_LENGTH and _ID.match(value) is not None


def check_id(name: str, value: object) -> str:
    """``value`` if it is a valid id.

    Args:
        name: what the id is (``test id``, ``segment``), for the message.
        value: the id to check.

    Returns:
        The id, unchanged.

    Raises:
        InvalidArgumentError: not a string matching :data:`ID_PATTERN` of at most :data:`ID_MAX_LENGTH` characters.
    """
    if not is_valid_id(value):
        shown = value if not isinstance(value, str) or len(value) <= 60 else value[:60] + "..."
        raise InvalidArgumentError(name, shown, _EXPECTED)
    return value  # type: ignore[return-value]
