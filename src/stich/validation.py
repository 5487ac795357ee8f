"""The input contract: which characters and JSON values Stich accepts, on both backends.

Every rule here is checked when a request (or a service input) is validated, before
anything is written, and each is published in the OpenAPI document as a ``pattern`` so
that clients and fuzzers see the same rule the server applies (docs/architecture.md,
"Input contract"):

- Every string is valid Unicode: no lone surrogates (pydantic refuses them in ``str``
  fields; JSON values are typed with :data:`JsonValue` so they are refused there too).
- No string may contain NUL: PostgreSQL ``text`` and ``jsonb`` cannot hold it, SQLite can,
  so allowing it anywhere would make the backends disagree.
- One-line text (titles, names, ids, search words, URLs) refuses every control character
  (C0, DEL, C1), the Unicode line and paragraph separators and the bidirectional
  overrides and isolates (which can make a name read differently from what it is).
- Multi-line text (descriptions, prompts, a bio, secret values) allows TAB, LF and CR and
  refuses the other control characters.
- JSON documents (blueprints, deployment metadata, preferences) may hold any other
  character in their strings and keys; their numbers must be finite (``NaN``,
  ``Infinity`` and literals too large for a double, like ``1e999``, are refused rather
  than stored as ``null``).

Passwords are the one exception: they are only ever hashed, so any valid Unicode is kept.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, Union

from pydantic import BeforeValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema
from typing_extensions import TypeAliasType

# Character classes shared by the patterns below, written once so that the check and the
# OpenAPI document cannot drift apart. They use only escapes that ECMA-262 (JSON Schema),
# Python's re and pydantic's Rust regex engine read the same way.
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # every control character but TAB LF CR
_LINE_BREAKS = r"\x09\x0a\x0d\u2028\u2029"
_BIDI = r"\u202a-\u202e\u2066-\u2069"
_BLANK = r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"  # what str.strip() removes, too

ONE_LINE_PATTERN = rf"^[^{_CONTROL}{_LINE_BREAKS}{_BIDI}]*$"
NONBLANK_LINE_PATTERN = (
    rf"^[^{_CONTROL}{_LINE_BREAKS}{_BIDI}]*"
    rf"[^{_CONTROL}{_LINE_BREAKS}{_BIDI}{_BLANK}]"
    rf"[^{_CONTROL}{_LINE_BREAKS}{_BIDI}]*$"
)
MULTI_LINE_PATTERN = rf"^[^{_CONTROL}]*$"
NO_NUL_PATTERN = r"^[^\x00]*$"
# An address as Stich stores it, blanks around it allowed (they are trimmed): one @, a dot
# in the domain, no blanks, controls or invisible characters anywhere.
_INVISIBLE = r"\u00ad\u200b-\u200f\u2060-\u2064\ufeff"
_EMAIL_CHAR = rf"[^@{_CONTROL}{_LINE_BREAKS}{_BIDI}{_BLANK}{_INVISIBLE}]"
_EMAIL_DOMAIN_CHAR = rf"[^@.{_CONTROL}{_LINE_BREAKS}{_BIDI}{_BLANK}{_INVISIBLE}]"
EMAIL_PATTERN = rf"^ *{_EMAIL_CHAR}{{1,64}}@{_EMAIL_CHAR}+\.{_EMAIL_DOMAIN_CHAR}+ *$"
# Ids as Stich makes them (UUIDs) or as a client could type them: letters, digits, - and _.
ID_PATTERN = r"^[0-9A-Za-z_-]+$"
# An absolute http(s) URL with a host part, in one piece: spaces must be percent-encoded.
_URL_CHAR = rf"[^{_CONTROL}{_LINE_BREAKS}{_BIDI}{_BLANK}]"
HTTP_URL_PATTERN = (
    rf"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#{_CONTROL}{_LINE_BREAKS}{_BIDI}{_BLANK}]+([/?#]{_URL_CHAR}*)?$"
)


@dataclass(frozen=True)
class TextRule:
    """Annotated metadata: checks a string against ``pattern`` before any other step
    (before stripping, so what is refused is what the client sent) and publishes the
    pattern in the JSON Schema."""

    pattern: str | None  # None: any valid Unicode
    message: str = ""
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # JSON Schema's ^...$ anchor the whole string; Python's $ would also match before
        # a final newline, so the check uses fullmatch on the body instead.
        regex = re.compile(self.pattern[1:-1]) if self.pattern else None
        object.__setattr__(self, "_regex", regex)

    def check(self, value: Any) -> Any:
        if isinstance(value, str):
            require_unicode(value)
            if self._regex is not None and not self._regex.fullmatch(value):
                raise ValueError(self.message)
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if self.pattern:
            json_schema["pattern"] = self.pattern
        return json_schema


ONE_LINE = TextRule(
    ONE_LINE_PATTERN,
    "must be one line without control characters, line separators or bidirectional overrides",
)
NONBLANK_LINE = TextRule(
    NONBLANK_LINE_PATTERN,
    "must be one line with a visible character, without control characters, line "
    "separators or bidirectional overrides",
)
MULTI_LINE = TextRule(
    MULTI_LINE_PATTERN, "must not contain control characters other than tab and line breaks"
)
NO_NUL = TextRule(NO_NUL_PATTERN, "must not contain NUL (U+0000)")
UNICODE = TextRule(None)  # passwords: only hashed, so any text that is valid Unicode
HTTP_URL = TextRule(HTTP_URL_PATTERN, "must be an http(s) URL, without spaces")


def require_unicode(value: str) -> None:
    """Refuse strings that cannot be written as UTF-8 (lone surrogates): neither backend
    can store them, and SQLite would accept them only to fail on every later read."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None


def check_one_line(value: str) -> str:
    """For validators that are not type annotations (e.g. a cleaned display name)."""
    return ONE_LINE.check(value)  # type: ignore[no-any-return]


# One-line text with no other rule: search words, tokens, ids sent in a body.
OneLine = Annotated[str, ONE_LINE]
MultiLine = Annotated[str, MULTI_LINE]


@dataclass(frozen=True, eq=False)  # hashed by identity: type annotations must hash
class SchemaExtra:
    """Annotated metadata adding keywords to a type's JSON Schema (e.g. an ``enum`` for a
    rule checked in code), wherever the type is used."""

    keywords: dict[str, Any]

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), **self.keywords}


def check_json(value: Any, where: str = "") -> Any:
    """Walk a parsed JSON document and refuse what the JSON columns of both backends cannot
    hold alike: NUL or lone surrogates in any string or key, non-finite numbers. It runs
    before the typed validation so the message names the place, e.g. ``a.b[2]``."""
    if isinstance(value, str):
        _check_json_text(value, where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where or 'value'}: must be a finite number (no NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            # The place is named by the key as JSON would escape it: a key may hold the
            # very character refused, and an error message must not.
            name = json.dumps(str(key))[1:-1]
            if isinstance(key, str):
                _check_json_text(key, f"{where}.{name}" if where else name)
            check_json(item, f"{where}.{name}" if where else name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, f"{where}[{index}]")
    return value


def _check_json_text(value: str, where: str) -> None:
    try:
        NO_NUL.check(value)
    except ValueError as exc:
        raise ValueError(f"{where or 'value'}: {exc}") from None


@dataclass(frozen=True)
class _NamedKeys:
    """Publish a dict's key rule as ``propertyNames`` (pydantic writes
    ``patternProperties``, which would leave keys outside the pattern unconstrained)."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        patterns = json_schema.pop("patternProperties", None)
        if patterns:
            ((pattern, values),) = patterns.items()
            json_schema["propertyNames"] = {"pattern": pattern}
            json_schema["additionalProperties"] = values
        return json_schema


# Any JSON value, as the JSON columns store it: strings and keys without NUL, finite
# numbers. Documents (blueprints, metadata, preferences) are JsonObject: checked by
# check_json first, for a message that says where the bad value is.
JsonText = Annotated[str, NO_NUL]
JsonNumber = Annotated[float, Field(allow_inf_nan=False)]
if TYPE_CHECKING:  # mypy cannot follow the recursive runtime alias; to it, any JSON
    JsonValue: TypeAlias = Any
else:
    JsonValue = TypeAliasType(
        "JsonValue",
        Union[  # noqa: UP007 (a runtime alias with forward references)
            JsonText,
            bool,
            int,
            JsonNumber,
            list["JsonValue"],
            Annotated[dict[JsonText, "JsonValue"], _NamedKeys()],
            None,
        ],
    )
JsonObject = Annotated[dict[JsonText, JsonValue], BeforeValidator(check_json), _NamedKeys()]
