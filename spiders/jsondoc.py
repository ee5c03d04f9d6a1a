"""JSON API bodies read within bounds: a response nested deeper than any real API answer is a
clear SourceError of that source (never a RecursionError recorded as an internal error)."""
from __future__ import annotations

import json
from typing import Any

from state.errors import SourceError

# Federal Register and Congress.gov answers nest 4-6 levels; 64 leaves room and keeps every later
# walk (provenance, json.dumps of an error) far from Python's recursion limit.
MAX_DEPTH = 64


def _depth_over(data: Any, limit: int) -> bool:
    """Whether `data` nests deeper than `limit` containers (walked iteratively)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack += [(c, depth + 1) for c in children if isinstance(c, (dict, list))]
    return False


def load_json(body: bytes, *, api: str, url: str, max_depth: int = MAX_DEPTH) -> Any:
    """`body` parsed as JSON; SourceError("<api>: ...") when it is not JSON or nests too deeply."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise SourceError(f"{api}: not JSON ({e})", url=url) from e
    except RecursionError:
        raise SourceError(f"{api}: the JSON nests deeper than {max_depth} levels", url=url) from None
    if _depth_over(data, max_depth):
        raise SourceError(f"{api}: the JSON nests deeper than {max_depth} levels", url=url)
    return data
