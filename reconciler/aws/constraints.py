"""AWS's documented rules for the values the agent sends, each with its source: `validate` refuses a spec whose
requests would break one (before any call), and the sandbox answers a request that breaks one with AWS's error
code. Rules that botocore's service model states (lengths, patterns, enums) are checked from the model itself
(apimodel.py); these are the ones AWS documents elsewhere, in its guides and API pages.

Each check returns a `Refusal` (AWS's error code and what is wrong, in AWS's terms) or None.
"""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Refusal:
    """What AWS answers a value it does not take: its error code, and why, in AWS's words where it has them."""

    code: str
    message: str
    source: str = ""

    def __str__(self) -> str:
        return self.message

    @property
    def cited(self) -> str:
        """Where AWS says it, short: the document and page (`S3 User Guide, "Bucket naming rules"`)."""
        return self.source.split(": ", 1)[0]

    def said(self) -> str:
        """The refusal as `validate` says it: what is wrong, AWS's error code and where AWS documents the rule."""
        return f"{self.message}: AWS refuses it ({self.code}; {self.cited})"


# ---------------------------------------------------------------------------- names

DYNAMODB_NAMES = ("DynamoDB Developer Guide, \"Supported data types and naming rules\": \"Table names and index "
                  "names must be between 3 and 255 characters long, and can contain only the following characters: "
                  "a-z, A-Z, 0-9, _ (underscore), - (dash), . (dot)\"")
_DYNAMODB_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


def dynamodb_name(name: str, what: str = "table") -> Refusal | None:
    """A table or index name DynamoDB takes."""
    if _DYNAMODB_NAME.fullmatch(name):
        return None
    return Refusal("ValidationException", f"{what} name {name!r}: DynamoDB takes 3 to 255 characters of a-z, A-Z, "
                                          "0-9, '_', '-' and '.'", DYNAMODB_NAMES)


BUCKET_NAMES = "S3 User Guide, \"General purpose bucket naming rules\""
_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name(name: str) -> Refusal | None:
    """A general purpose bucket name S3 takes (every rule of the naming page, in its order)."""
    why = None
    if not 3 <= len(name) <= 63:
        why = "must be between 3 (min) and 63 (max) characters long"
    elif not _BUCKET_CHARS.fullmatch(name):
        why = ("can consist only of lowercase letters, numbers, periods (.), and hyphens (-), and must begin and end "
               "with a letter or number")
    elif ".." in name:
        why = "must not contain two adjacent periods"
    elif _is_ip(name):
        why = "must not be formatted as an IP address"
    elif name.startswith(_BUCKET_PREFIXES):
        why = f"must not start with the prefix {next(p for p in _BUCKET_PREFIXES if name.startswith(p))}"
    elif name.endswith(_BUCKET_SUFFIXES):
        why = f"must not end with the suffix {next(s for s in _BUCKET_SUFFIXES if name.endswith(s))}"
    return Refusal("InvalidBucketName", f"bucket name {name!r}: bucket names {why}", BUCKET_NAMES) if why else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
        return True
    except ValueError:
        return False


REPLICATION_GROUP_IDS = ("ElastiCache API Reference, CreateReplicationGroup, ReplicationGroupId: \"A name must "
                         "contain from 1 to 40 alphanumeric characters or hyphens. The first character must be a "
                         "letter. A name cannot end with a hyphen or contain two consecutive hyphens.\"")


def replication_group_id(name: str) -> Refusal | None:
    """A replication group id ElastiCache takes (it stores it in lowercase)."""
    fine = (1 <= len(name) <= 40 and re.fullmatch(r"[A-Za-z0-9-]+", name) is not None and name[0].isascii()
            and name[0].isalpha() and not name.endswith("-") and "--" not in name)
    if fine:
        return None
    return Refusal("InvalidParameterValue", f"replication group id {name!r}: a name must contain from 1 to 40 "
                                            "alphanumeric characters or hyphens, start with a letter, and not end "
                                            "with a hyphen or contain two consecutive hyphens", REPLICATION_GROUP_IDS)


COMMENT_SOURCE = ("CloudFront API Reference, DistributionConfig, Comment: \"A comment to describe the distribution. "
                  "The comment cannot be longer than 128 characters.\"")


def distribution_comment(comment: str) -> Refusal | None:
    """A distribution's comment CloudFront takes."""
    if len(comment) <= 128:
        return None
    return Refusal("InvalidArgument", f"the comment has {len(comment)} characters; CloudFront takes at most 128",
                   COMMENT_SOURCE)


# ---------------------------------------------------------------------------- tags


@dataclass(frozen=True)
class TagRules:
    """One service's documented tag rules: the characters keys and values may hold (None: any), their lengths, how
    many tags a resource holds, and AWS's error codes for a bad tag and for too many."""

    service: str
    characters: _Chars | None
    allowed: str          # the characters, as the documentation lists them
    source: str
    code: str
    too_many_code: str
    key_max: int = 128
    value_max: int = 256
    max_tags: int = 50


@dataclass(frozen=True)
class _Chars:
    """Unicode letters, numbers and separators (\\p{L}, \\p{N}, \\p{Z}, as AWS's patterns say), plus `extra`."""

    extra: str

    def fullmatch(self, text: str) -> bool:
        return all(unicodedata.category(c)[0] in "LNZ" or c in self.extra for c in text)


def _chars(extra: str) -> _Chars:
    return _Chars(extra)


TAGS = {
    "dynamodb": TagRules(
        "dynamodb", _chars("+-=._:/"), "letters, white space, and numbers, plus + - = . _ : /",
        "DynamoDB Developer Guide, \"Tagging restrictions in DynamoDB\": \"The allowed characters are letters, white "
        "space, and numbers, plus the following special characters: + - = . _ : /\"; \"The maximum number of tags per "
        "resource is 50\"; the aws: prefix \"you can't assign\"", "ValidationException", "ValidationException"),
    "s3": TagRules(
        "s3", _chars("_.:/=+@-"), "Unicode letters or numbers, white space, and _ . : / = + @ -",
        "S3 User Guide, \"Tagging for cost allocation or attribute-based access control (ABAC)\": keys \"can only "
        "contain Unicode letters or numbers, white space, and the following symbols: _ . : / = + @ -\", 1 to 128 "
        "characters, values 0 to 256; a tag set holds at most 50 tags; PutBucketTagging: \"InvalidTag - The tag "
        "provided was not a valid tag\"", "InvalidTag", "InvalidTag"),
    "cloudfront": TagRules(
        "cloudfront", _chars("_.:/=+@-"), "letters, numbers, space, and _ - . : / = + @",
        "CloudFront API Reference, Tag: \"Valid characters include a-z, A-Z, 0-9, space, and the special characters "
        "_ - . : / = + @\" (pattern ([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)); CloudFront quotas: 50 tags per distribution; "
        "error InvalidTagging", "InvalidTagging", "InvalidTagging"),
    "elasticache": TagRules(
        "elasticache", None, "any character",
        "ElastiCache User Guide, \"Tagging your ElastiCache resources\", Tag restrictions: \"Maximum number of tags "
        "per resource - 50\", keys 128 and values 256 Unicode characters, \"ElastiCache allows for any character in "
        "its tags\", \"The aws: prefix is reserved for AWS use\"; error TagQuotaPerResourceExceeded",
        "InvalidParameterValue", "TagQuotaPerResourceExceeded"),
    "ec2": TagRules(
        "ec2", None, "any character",
        "EC2 User Guide, \"Tag restrictions\": 50 tags per resource, keys 128 and values 256 Unicode characters, "
        "the aws: prefix reserved", "InvalidParameterValue", "TagLimitExceeded"),
}
RESERVED_PREFIX = "aws:"


def tag_refusals(service: str, tags: Mapping[str, Any], kept: int = 0) -> list[Refusal]:
    """Why `service` refuses these tags (written together, as one request or one resulting tag set): each key and
    value against its characters and lengths, the reserved `aws:` prefix, and the count (`kept`: the resource's
    other tags that count, beside these)."""
    rules = TAGS[service]
    out = []
    for key, value in tags.items():
        key, text = str(key), "" if value is None else str(value)
        if key.lower().startswith(RESERVED_PREFIX):
            out.append(Refusal(rules.code, f"tag key {key!r}: the prefix aws: is reserved for AWS's own tags",
                               rules.source))
            continue
        for what, part, longest, shortest in (("key", key, rules.key_max, 1), ("value", text, rules.value_max, 0)):
            length = len(part)  # Unicode characters (code points), as AWS counts them
            if not shortest <= length <= longest:
                out.append(Refusal(rules.code, f"tag {what} {_shown(part)}: {length} characters; {service} takes "
                                               f"{shortest} to {longest}", rules.source))
            elif rules.characters is not None and not rules.characters.fullmatch(part):
                bad = sorted({c for c in part if not rules.characters.fullmatch(c)})
                out.append(Refusal(rules.code, f"tag {what} {_shown(part)}: {' '.join(map(_char, bad))} not allowed; "
                                               f"{service} takes {rules.allowed}", rules.source))
    counted = sum(1 for k in tags if not str(k).lower().startswith(RESERVED_PREFIX)) + kept
    if counted > rules.max_tags:
        out.append(Refusal(rules.too_many_code, f"{counted} tags: {service} takes at most {rules.max_tags} tags on a "
                                                "resource", rules.source))
    return out


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _char(c: str) -> str:
    return repr(c) if c.isprintable() and not c.isspace() else f"U+{ord(c):04X} ({unicodedata.name(c, '?')})"


# ---------------------------------------------------------------------------- DynamoDB items

ITEM_MAX = 400 * 1024
ITEM_SOURCE = ("DynamoDB Developer Guide, Constraints: \"The maximum item size in DynamoDB is 400 KB, which includes "
               "both attribute name binary length (UTF-8 length) and attribute value lengths\" (1 KB = 1024 bytes); "
               "\"DynamoDB item sizes and formats\" says how each type counts")
KEY_SOURCE = ("DynamoDB API Reference, PutItem: \"Attribute values of type String and Binary must have a length "
              "greater than zero if the attribute is used as a key attribute for a table or index\"; Developer "
              "Guide, Constraints: partition key values 1 to 2048 bytes, sort key values 1 to 1024 bytes")


def value_size(value: Any) -> int:
    """The bytes an attribute value counts for in DynamoDB's item size (name not included): a string its UTF-8
    bytes, a number 1 byte per two significant digits plus 1, binary its raw bytes, null and a boolean 1, a list or
    map 3 bytes plus 1 byte per element plus its elements (a map's keys count as names), a set its members."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, int | float | Decimal):
        digits = Decimal(str(value)).normalize().as_tuple().digits
        return (len(digits) + 1) // 2 + 1
    if isinstance(value, Mapping):
        return 3 + sum(1 + len(str(k).encode("utf-8")) + value_size(v) for k, v in value.items())
    if isinstance(value, set | frozenset):
        return sum(value_size(v) for v in value)
    if isinstance(value, list | tuple):
        return 3 + sum(1 + value_size(v) for v in value)
    return len(str(value).encode("utf-8"))


def item_size(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB counts it: each attribute's name (UTF-8 bytes) and value."""
    return sum(len(str(name).encode("utf-8")) + value_size(value) for name, value in item.items())


def item_refusals(item: Mapping[str, Any], keys: Sequence[str]) -> list[Refusal]:
    """Why DynamoDB refuses to store this item (plain values): over 400 KB, or a key value empty or too long
    (`keys`: the partition key's name, then the sort key's if any)."""
    out = []
    size = item_size(item)
    if size > ITEM_MAX:
        out.append(Refusal("ValidationException", f"the item is {size:,} bytes as DynamoDB counts them; DynamoDB "
                                                  f"takes items up to 400 KB ({ITEM_MAX:,} bytes)", ITEM_SOURCE))
    for name, longest in zip(keys, (2048, 1024), strict=False):
        if name not in item:
            continue
        value = item[name]
        if isinstance(value, str | bytes | bytearray):
            length = len(value.encode("utf-8")) if isinstance(value, str) else len(value)
            if length == 0:
                out.append(Refusal("ValidationException", f"key attribute {name!r} is empty; DynamoDB takes key values "
                                                          "of 1 byte or more", KEY_SOURCE))
            elif length > longest:
                out.append(Refusal("ValidationException", f"key attribute {name!r} is {length} bytes; DynamoDB takes "
                                                          f"at most {longest}", KEY_SOURCE))
    return out


# ---------------------------------------------------------------------------- bucket policies

POLICY_MAX = 20 * 1024
POLICY_SOURCE = ("S3 User Guide, \"Bucket policies for Amazon S3\": \"Bucket policies are limited to 20 KB in size\"; "
                 "S3 API Reference, Error responses: MalformedPolicy (the policy is not valid JSON, or lacks a "
                 "statement)")


def policy_refusal(document: str) -> Refusal | None:
    """Why S3 refuses a bucket policy document: empty, not a JSON object, no statement, or over 20 KB."""
    def malformed(why: str) -> Refusal:
        return Refusal("MalformedPolicy", why, POLICY_SOURCE)

    if not document.strip():
        return malformed("the policy is empty")
    if not document.lstrip().startswith("{"):
        return malformed("Policies must be valid JSON and the first byte must be '{'")
    try:
        parsed = json.loads(document)
    except ValueError as exc:
        return malformed(f"the policy is not valid JSON ({exc.msg})")
    if not isinstance(parsed, dict) or "Statement" not in parsed:
        return malformed("Missing required field Statement")
    if not parsed["Statement"]:
        return malformed("Could not parse the policy: Statement is empty!")
    if len(json.dumps(parsed, separators=(",", ":")).encode()) > POLICY_MAX:
        return Refusal("PolicyTooLarge", "the policy is larger than 20 KB", POLICY_SOURCE)
    return None
