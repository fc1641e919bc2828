"""Go's ``encoding/json``: its exact bytes out, and its field matching in.

* Encoding (:mod:`dms.gojson._encode`): :func:`marshal` reproduces ``json.Marshal`` byte for byte,
  because tokens and envelopes are signed over those bytes.
* Decoding (:mod:`dms.gojson._decode`, :mod:`dms.gojson._fold`): the one rule set every decoder of
  peer JSON uses: keys fill struct fields as Go matches them (exact name first, then Unicode
  simple case folding), unknown keys are ignored, repeated keys are refused in signed objects and
  decoded as Go does (last wins, objects merge) elsewhere.
"""

from dms.gojson._decode import (
    NEGATIVE_ZERO,
    Fields,
    NotJSON,
    Object,
    bytes_value,
    decode_struct,
    field,
    folded,
    kind,
    loads,
    pairs,
    str_value,
    strings_value,
    uint64_value,
)
from dms.gojson._encode import (
    SHORT_BF_ESCAPES,
    Float32,
    Raw,
    Struct,
    b64decode,
    b64encode,
    format_float,
    marshal,
    string,
)
from dms.gojson._fold import equal_fold, fold

__all__ = [
    "NEGATIVE_ZERO",
    "SHORT_BF_ESCAPES",
    "Fields",
    "Float32",
    "NotJSON",
    "Object",
    "Raw",
    "Struct",
    "b64decode",
    "b64encode",
    "bytes_value",
    "decode_struct",
    "equal_fold",
    "field",
    "fold",
    "folded",
    "format_float",
    "kind",
    "loads",
    "marshal",
    "pairs",
    "str_value",
    "string",
    "strings_value",
    "uint64_value",
]
