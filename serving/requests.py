"""What a request may be: the body's JSON, its fields and texts under the server's limits,
TensorFlow Serving's row and columnar forms; every error an :class:`HTTPError` that names the
field."""

import base64
import binascii
import dataclasses
import difflib
import json
import math
from typing import List, Optional

from zoo.inputs import InputError, check_texts, strategy_name


@dataclasses.dataclass
class Limits:
    """What one request may ask, and how requests are batched.

    Args:
        max_batch_size: Most texts decoded in one batch.
        batch_timeout: Seconds a batch waits to fill after its oldest request arrived.
        max_queue: Requests waiting per model before 503.
        max_texts: Texts per request.
        max_chars: Characters per text.
        max_body_bytes: Bytes per request body (413 beyond).
        request_timeout: Seconds before a request answers 504.
    """

    max_batch_size: int = 32
    batch_timeout: float = 0.002
    max_queue: int = 256
    max_texts: int = 64
    max_chars: int = 10_000
    max_body_bytes: int = 1 << 20
    request_timeout: float = 30.0

    def __post_init__(self):
        for name in ("max_batch_size", "max_queue", "max_texts", "max_chars",
                     "max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a whole number >= 1, got "
                                 f"{value!r}")
        for name in ("batch_timeout", "request_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or value < 0 or \
                    (name == "request_timeout" and value == 0):
                raise ValueError(f"Limits.{name} must be a finite number of seconds "
                                 f"{'> 0' if name == 'request_timeout' else '>= 0'}, got "
                                 f"{value!r}")


class HTTPError(Exception):
    """An error answer: status, message and (where it applies) the field at fault."""

    def __init__(self, status: int, message: str, field: Optional[str] = None,
                 headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


async def read_json(request, limit: int):
    """The request body as JSON, with 413 / 400 errors that say what is wrong and where."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPError(400, f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise HTTPError(413, f"request body is {int(declared):,} bytes; the limit is "
                                 f"{limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"request body exceeds the limit of {limit:,} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise HTTPError(400, "request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise HTTPError(400, f"request body is not valid UTF-8 (byte {err.start})") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise HTTPError(400, f"malformed JSON at line {err.lineno} column {err.colno}: "
                             f"{err.msg}") from None
    except ValueError as err:
        raise HTTPError(400, str(err)) from None
    except RecursionError:
        raise HTTPError(400, "JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise HTTPError(400, f"request body must be a JSON object, got {_json_type(body)}")
    return body


def _reject_constant(name):
    raise ValueError(f"malformed JSON: {name} is not a JSON number")


def _json_type(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value),
                                                                      type(value).__name__)


def check_fields(body: dict, known, where: str = "request") -> None:
    for key in body:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            name = str(key) if where == "request" else f"{where}.{key}"
            raise HTTPError(400, f"unknown field {key!r} in {where if where != 'request' else 'the request'}"
                                 f"{hint} (fields: {', '.join(known)})", field=name)


def check_request_texts(texts, limits: Limits, field: str = "texts") -> List[str]:
    """The input contract's checks plus the server's limits, naming the item."""
    if texts is None:
        raise HTTPError(400, f"field {field!r} is missing (a list of strings)", field=field)
    try:
        texts = check_texts(texts, field)
    except InputError as err:
        raise HTTPError(400, str(err), field=err.field) from None
    if not texts:
        raise HTTPError(400, f"{field} is empty; send at least one text", field=field)
    if len(texts) > limits.max_texts:
        raise HTTPError(400, f"{field} has {len(texts)} items; the limit is "
                             f"{limits.max_texts} per request", field=field)
    for i, t in enumerate(texts):
        if len(t) > limits.max_chars:
            raise HTTPError(400, f"{field}[{i}] has {len(t):,} characters; the limit is "
                                 f"{limits.max_chars:,}", field=f"{field}[{i}]")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as err:
            raise HTTPError(400, f"{field}[{i}] is not valid Unicode (a lone surrogate at "
                                 f"character {err.start})", field=f"{field}[{i}]") from None
    return texts


def decoding_key(served, strategy, options: dict, return_attention=False):
    """Checked options -> the batch key ``(strategy, options, return_attention)``."""
    if strategy is None:  # beam when a beam option asks for it
        beam = options.get("beam_size")
        wide = isinstance(beam, (int, float)) and not isinstance(beam, bool) and beam != 1
        strategy = "beam" if wide or "length_penalty" in options or \
            "coverage_penalty" in options else "greedy"
    if not isinstance(return_attention, bool):
        raise HTTPError(400, f"return_attention must be true or false, got "
                             f"{json.dumps(return_attention)[:40]}", field="return_attention")
    try:
        name = strategy_name(strategy)
        if name == "greedy" and options.get("beam_size") == 1:
            options = {k: v for k, v in options.items() if k != "beam_size"}
        options = served.runner.check_options(name, dict(options))
    except InputError as err:
        raise HTTPError(400, str(err), field=err.field) from None
    return name, tuple(sorted(options.items())), return_attention


def _version(version: str) -> None:
    if version != "1":
        raise HTTPError(404, f"version {version!r} is not served (zoo serves version 1)",
                        field="version")


def _finite(x) -> Optional[float]:
    x = float(x)
    return x if math.isfinite(x) else None


def _text_value(value, field: str) -> str:
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            raw = base64.b64decode(value["b64"], validate=True)
            return raw.decode("utf-8")
        except (binascii.Error, TypeError, ValueError):
            raise HTTPError(400, f"{field}.b64 is not base64 of UTF-8 text",
                            field=f"{field}.b64") from None
    return value


def _rows(instances, allowed):
    """TF Serving's row form -> texts and (shared) decoding options."""
    if not isinstance(instances, list):
        raise HTTPError(400, f"instances must be an array, got {_json_type(instances)}",
                        field="instances")
    texts, options = [], {}
    for i, row in enumerate(instances):
        field = f"instances[{i}]"
        if isinstance(row, dict) and set(row) != {"b64"}:
            check_fields(row, allowed, field)
            if "text" not in row:
                raise HTTPError(400, f"{field} has no 'text'", field=f"{field}.text")
            for k in allowed[1:]:
                if k in row:
                    if k in options and options[k] != row[k]:
                        raise HTTPError(400, f"{field}.{k} differs from an earlier instance; "
                                             f"it must be the same for the whole request",
                                        field=f"{field}.{k}")
                    options[k] = row[k]
            texts.append(_text_value(row["text"], f"{field}.text"))
        else:
            texts.append(_text_value(row, field))
    return texts, options


def _columns(inputs, allowed):
    """TF Serving's columnar form -> texts and decoding options."""
    if isinstance(inputs, list):
        return [_text_value(v, f"inputs[{i}]") for i, v in enumerate(inputs)], {}
    if not isinstance(inputs, dict):
        raise HTTPError(400, f"inputs must be an array of strings or an object, got "
                             f"{_json_type(inputs)}", field="inputs")
    check_fields(inputs, allowed, "inputs")
    if "text" not in inputs:
        raise HTTPError(400, "inputs has no 'text'", field="inputs.text")
    texts = inputs["text"]
    if isinstance(texts, list):
        texts = [_text_value(v, f"inputs.text[{i}]") for i, v in enumerate(texts)]
    return texts, {k: inputs[k] for k in allowed[1:] if k in inputs}
