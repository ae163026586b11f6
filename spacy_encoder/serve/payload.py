"""The body of `POST /annotate`, checked: `{"text": "..."}` or `{"texts": ["...", ...]}`
in, a list of texts out, or a `RequestError` with the HTTP status and a one-line reason."""
from __future__ import annotations

import json
from typing import Any, List

USAGE = 'send {"text": "..."} or {"texts": ["...", ...]}'


class RequestError(Exception):
    """A request the service refuses: `status` (4xx) and a one-line `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_texts(body: bytes, *, max_texts: int) -> List[str]:
    """The texts of a request body (one for `text`). Malformed JSON is 400; valid JSON
    of the wrong shape (not an object, both or neither field, a non-string text, an
    empty or too long `texts`) is 422. Other fields are ignored."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise RequestError(400, f"the body is not JSON ({err.msg} at line {err.lineno} column {err.colno}): {USAGE}") from None
    if not isinstance(data, dict):
        raise RequestError(422, f"the body is a JSON {_kind(data)}, not an object: {USAGE}")
    if ("text" in data) == ("texts" in data):
        which = "both" if "text" in data else "neither"
        raise RequestError(422, f'the body has {which} of "text" and "texts": {USAGE}')
    if "text" in data:
        if not isinstance(data["text"], str):
            raise RequestError(422, f'"text" is a JSON {_kind(data["text"])}, not a string')
        return [data["text"]]
    texts = data["texts"]
    if not isinstance(texts, list):
        raise RequestError(422, f'"texts" is a JSON {_kind(texts)}, not a list of strings')
    if not texts:
        raise RequestError(422, '"texts" is empty: give at least one text')
    if len(texts) > max_texts:
        raise RequestError(422, f'"texts" holds {len(texts)} texts, over the limit of {max_texts} (--max-texts)')
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(422, f'"texts"[{i}] is a JSON {_kind(text)}, not a string')
    return texts


def _kind(value: Any) -> str:
    """The JSON name of a parsed value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(type(value), type(value).__name__)
