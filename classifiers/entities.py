"""Entities agents and automation need (order numbers, products) and the PII to hide.

Rules, not a statistical model: order numbers, e-mail addresses, phone and card numbers have
shapes, and a rule either matches or it does not, in any language. Card numbers must pass the Luhn
check so that order numbers are not mistaken for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from pipeline.records import Entity

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
# Phones by their shape: a country code, an area code in brackets, digit groups with separators,
# or a Chinese mobile number. A bare run of digits is a phone only right after a word that says
# so ("call", "电话"): otherwise it is far more often an order, parcel or ticket number, which
# the agent needs to see (issue 22, point 7).
PHONE = re.compile(
    r"(?<![\dA-Za-z#])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"
    r"|\d{2,4}[ .-]\d{3,4}(?:[ .-]\d{3,4})?"
    r"|1[3-9]\d{9}"
    r")(?![\dA-Za-z])"
)


def _cased(pattern: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A keyword pattern twice: for the lower-cased text (no ``re.I``, so the engine can skip to
    the keywords' first letters: 4-5 instead of 17-27 microseconds a post) and, where lowering
    changed the text's length (as "İ" does), ``re.I`` on the text itself."""
    lower = pattern.replace("A-Z", "a-z").replace("ORD-", "ord-")
    return re.compile(lower), re.compile(pattern, re.I)


PHONE_AFTER_WORD = _cased(
    r"(?:(?:call|ring|phone|tel|mobile|cell|whatsapp|text me|sms|fax)\b|电话|手机|致电|联系)"
    r"\D{0,12}?(?<![\dA-Za-z#])(\+?\d[\d .-]{5,18}\d)(?!\d)"
)
ORDER = _cased(
    r"(?:order\s*(?:no\.?|number|#)?\s*|订单(?:号)?\s*|#|\bORD-)([A-Z]{0,3}-?\d{5,12})(?!\d)"
)
PARCEL = _cased(
    r"(?:(?:parcel|package|tracking|shipment|consignment|waybill)\s*(?:no\.?|number|id|#)?|"
    r"快递单?号?|运单号?|包裹号?)\s*[:：]?\s*((?=[A-Z0-9]*\d{4})[A-Z0-9]{6,30})(?![\dA-Za-z])"
)
TICKET = _cased(
    r"(?:(?:ticket|case|ref|reference|complaint)\s*(?:no\.?|number|id|#)?|工单号?|投诉单?号)"
    r"\s*[:：]?\s*([A-Z]{0,3}-?\d{4,12})(?!\d)"
)
DIGIT = re.compile(r"\d")
URL_RE = re.compile(r"https?://\S+|www\.\S+")
# The sign comes first and the look-behind after it (same matches as "(?<!\w)#..."), so that the
# engine can skip to each sign instead of testing the look-behind at every position.
MENTION_RE = re.compile(r"@(?<!\w@)\w{1,30}")
HASHTAG_RE = re.compile(r"#(?<!\w#)[^\s#]{1,60}#?")

REDACTED = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]"}
# Reference numbers agents need (to look the order up) and marketing does not.
REFERENCES = {"order_number": "[ORDER]", "parcel_number": "[PARCEL]", "ticket_number": "[TICKET]"}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class EntityExtractor:
    def __init__(self, products: Sequence[str] = ()) -> None:
        self.products = tuple(products)
        names = sorted(products, key=len, reverse=True)
        self._product = re.compile("|".join(map(re.escape, names)), re.I) if names else None
        # The same names lower-cased, matched in the lower-cased text: a case-sensitive
        # alternation of literals scans about seven times faster than ``re.I``.
        self._product_lower = (
            re.compile("|".join(re.escape(p.lower()) for p in names)) if names else None
        )

    def extract(self, text: str) -> list[Entity]:
        found: list[Entity] = []
        taken: list[tuple[int, int]] = []

        def add(kind: str, start: int, end: int) -> None:
            if any(start < e and s < end for s, e in taken):
                return
            taken.append((start, end))
            found.append(Entity(kind=kind, text=text[start:end], start=start, end=end))

        # Each pattern needs a character most posts lack; checking for it first skips the scan.
        at, digits = "@" in text, DIGIT.search(text) is not None
        lowered = text.lower()
        # lower() keeps offsets unless a character changes length (as "İ" does)
        same = len(lowered) == len(text)

        def keyed(patterns: tuple[re.Pattern[str], re.Pattern[str]]) -> Iterator[re.Match[str]]:
            return patterns[0].finditer(lowered) if same else patterns[1].finditer(text)

        if at:
            for m in EMAIL.finditer(text):
                add("email", m.start(), m.end())
        if "http" in text or "www." in text:
            for m in URL_RE.finditer(text):
                add("url", m.start(), m.end())
        if digits:
            for m in CARD.finditer(text):
                digits_only = re.sub(r"\D", "", m.group())
                if 13 <= len(digits_only) <= 19 and luhn_ok(digits_only):
                    add("card", m.start(), m.end())
            # the named kinds first: "ticket #88213" is a ticket, though "#88213" alone reads
            # as an order
            for kind, pattern in (
                ("parcel_number", PARCEL),
                ("ticket_number", TICKET),
                ("order_number", ORDER),
            ):
                for m in keyed(pattern):
                    add(kind, m.start(1), m.end(1))
            for m in PHONE.finditer(text):
                if sum(ch.isdigit() for ch in m.group()) >= 7:
                    add("phone", m.start(), m.end())
            for m in keyed(PHONE_AFTER_WORD):
                if sum(ch.isdigit() for ch in m.group(1)) >= 7:
                    add("phone", m.start(1), m.end(1))
        if at:
            for m in MENTION_RE.finditer(text):
                add("mention", m.start(), m.end())
        if "#" in text:
            for m in HASHTAG_RE.finditer(text):
                add("hashtag", m.start(), m.end())
        if self._product is not None and self._product_lower is not None:
            found_products = (
                self._product_lower.finditer(lowered) if same else self._product.finditer(text)
            )
            for m in found_products:
                add("product", m.start(), m.end())
        return sorted(found, key=lambda e: e.start)

    def extract_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        return [self.extract(t) for t in texts]


def mask_pii(entities: Sequence[Entity]) -> list[Entity]:
    """The entities as they are kept: e-mail addresses, phone and card numbers by their kind and
    position only (the value stays in the post's text, which only agents and admins read)."""
    return [
        e.model_copy(update={"text": REDACTED[e.kind]}) if e.kind in REDACTED else e
        for e in entities
    ]


def redact(text: str, entities: Sequence[Entity]) -> str:
    """The text with e-mail addresses, phone and card numbers replaced by their kind: what
    agents read. Order, parcel and ticket numbers stay (``redact_references`` hides them)."""
    out, last = [], 0
    for e in entities:
        if e.kind in REDACTED:
            out.append(text[last : e.start])
            out.append(REDACTED[e.kind])
            last = e.end
    out.append(text[last:])
    return "".join(out)


def redact_references(text: str, entities: Iterable[tuple[str, str]]) -> str:
    """``redact``'s text with order, parcel and ticket numbers hidden too: what marketing reads.

    ``entities`` are (kind, text) pairs of the post's entities; the numbers are replaced where
    they occur in ``text``, which ``redact`` has already shortened (offsets no longer hold).
    """
    for kind, found in entities:
        if kind in REFERENCES and found:
            text = text.replace(found, REFERENCES[kind])
    return text
