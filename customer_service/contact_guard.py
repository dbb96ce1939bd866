"""The contact-swap guard's detector: phone numbers, WeChat and QQ ids, e-mail addresses and outside
links in a message, however spelled (pure: no Django, no I/O; microseconds per message).

`scan(text)` folds the text first (NFKC: full-width letters and digits, circled and other enclosed
digits, mathematical alphanumerics; Chinese numerals 一二三.. 零〇幺两 and 壹贰.. to digits), keeping
for every folded character the index of the original one, so findings are spans of the original
text that `mask` replaces. Rules (each has rows in tests/customer_service/test_contact_guard.py):

- phone: a run of digits with up to 3 separators (space . - _ · , 、 / ( ) *) between any two, whose
  digits (without separators) are a Chinese mobile `1[3-9]` + 9 digits (optionally after 86 / 0086),
  a landline `0` + area code + number (10-12 digits), a 400/800 hotline (10 digits), `+` and 7-15
  digits, or a North American `(415) 555-2671` / `415-555-2671` shape. A run right after an order,
  tracking or waybill word (订单, 单号, 运单, 快递, 物流, order, tracking, ...) is an order or
  tracking number, not a phone; so is a run glued to more digits or letters after it.
- wechat: 微信 / 微 信 / 薇信 / 威信 / V信 / v❤ / weixin / wechat / wx / vx, or 加(我)V / +V / 加微,
  then optional filler (号, 号码, id, 是, :, spaces), then an id: a letter and 5-19 more letters,
  digits, `_` or `-` (WeChat's rule), or a phone-like digit run (5+ digits: many use their number).
  `wxid_...` alone is a WeChat id too.
- qq: QQ / 扣扣 / 企鹅 / 球球 (+ 号, 群, :) then 5-11 digits (separators allowed).
- email: local@domain.tld, with @ also spelled (at), [at], " at ", 艾特, 圈a, and the dots
  (dot), [dot], " dot ", 点, 。.
- link: http(s)://..., www...., or a bare domain with a common TLD (xx.com, t.cn/..., 163.com),
  the dot possibly spelled 点 / 。/ (dot); except hosts of `allowed_domains` and their subdomains.

Not findings: prices (¥129.00), quantities, sizes (170/88A), dates and times, order and tracking
numbers after their words, version numbers, file names.
"""

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

PHONE = "phone"
WECHAT = "wechat"
QQ = "qq"
EMAIL = "email"
LINK = "link"
KINDS = (PHONE, WECHAT, QQ, EMAIL, LINK)
MASK = "***"


@dataclass(frozen=True)
class Finding:
    """One contact in a text: its kind and its span [start, end) in the original text."""

    kind: str
    start: int
    end: int


# --- Folding ------------------------------------------------------------------------------------

_CHINESE_DIGITS = {
    "零": "0", "〇": "0", "○": "0", "一": "1", "幺": "1", "壹": "1", "二": "2", "两": "2", "贰": "2", "貳": "2",
    "三": "3", "叁": "3", "參": "3", "四": "4", "肆": "4", "五": "5", "伍": "5", "六": "6", "陆": "6", "陸": "6",
    "七": "7", "柒": "7", "八": "8", "捌": "8", "九": "9", "玖": "9",
}

# Blocks whose NFKC form is plain ASCII letters and digits: Latin-1 superscripts, super- and
# subscripts, enclosed alphanumerics (①, ⑴, ⒈, ⓐ), dingbat circled digits (❶, ➀), enclosed CJK
# (㊀), full-width forms, mathematical alphanumerics (𝟏), enclosed alphanumeric supplement.
_FOLD_BLOCKS = ((0x00A0, 0x00FF), (0x2070, 0x209F), (0x2460, 0x24FF), (0x2776, 0x2793), (0x3000, 0x3000),
                (0x3200, 0x32FF), (0xFF01, 0xFF5E), (0x1D400, 0x1D7FF), (0x1F100, 0x1F1FF))


def _fold_table() -> dict[int, str]:
    table = {ord(char): digit for char, digit in _CHINESE_DIGITS.items()}
    # Dingbat circled digits have no compatibility form: ❶-❿, ➀-➉, ➊-➓.
    for first in (0x2776, 0x2780, 0x278A):
        for value in range(1, 11):
            table[first + value - 1] = str(value)
    table[ord("。")] = "."
    table[ord("＠")] = "@"
    for first, last in _FOLD_BLOCKS:
        for code in range(first, last + 1):
            char = chr(code)
            folded = unicodedata.normalize("NFKC", char)
            if folded == char:
                continue
            if 0x2460 <= code <= 0x24FF or 0x3200 <= code <= 0x32FF or 0x1F100 <= code <= 0x1F1FF:
                folded = folded.strip("().,")  # ⑴ "(1)", ⒈ "1.", 🄁 "0,": the digit or letter itself
            folded = "".join(_CHINESE_DIGITS.get(part, part) for part in folded)  # ㊀ -> 一 -> 1
            if folded and len(folded) <= 2 and folded.isascii() and (folded.isalnum() or len(folded) == 1):
                table[code] = folded
    return table


_FOLD = _fold_table()


def fold(text: str) -> tuple[str, list[int] | None]:
    """The text as the patterns read it, and the original index of each of its characters (None:
    the same as its own: nothing changed length)."""
    if text.isascii():
        return text, None
    folded = text.translate(_FOLD)
    if len(folded) == len(text):  # every fold is one character to one or two: nothing grew
        return folded, None
    origin: list[int] = []
    for index, char in enumerate(text):
        origin.extend([index] * len(_FOLD.get(ord(char), char)))
    return folded, origin


# --- Patterns (on the folded text) ----------------------------------------------------------------

_SEP = r"[\s.\-_·•,，、/()*~]"
_RUN = rf"\d(?:{_SEP}{{0,3}}\d)*"
# Starts with its digit, so the engine skips everything else at C speed; a "+" or "(" just before
# is looked at by hand (_phones).
_DIGIT_RUN = re.compile(_RUN)
_RUN_OPENER = re.compile(r"(\+\s*)?(?:\(\s*)?$")
_NOT_SEP = re.compile(rf"{_SEP}")

_MOBILE = re.compile(r"(?:0086|86)?1[3-9]\d{9}")
_LANDLINE = re.compile(r"(?:0086|86)?0[1-9]\d{8,10}|(?:400|800)\d{7}")
_INTERNATIONAL = re.compile(r"\d{7,15}")
_NANP = re.compile(r"(?:1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}")

# An order, tracking or waybill number: the run comes right after its word.
_NUMBER_WORD = re.compile(
    r"(?<![a-z])(?:订单|单号|运单|快递|物流|包裹|货号|编号|工单|流水|发票|退款|售后|sku|order|tracking|waybill|invoice|parcel|"
    r"ref|no|#)"
    r"[\s:：#号码编是为]*(?:no\.?|number|id|num)?[\s:：#.]*$",
    re.IGNORECASE,
)

_ID = r"[a-z][a-z0-9_-]{5,19}(?![a-z0-9_-])"
_FILLER = r"(?:[\s:：=＝,，]|号码?|账号|帐号|id|is|是|为|搜|搜索|同号|加|我){0,6}"
_WECHAT = re.compile(
    r"(?P<keyword>(?:[微薇威徽]|v|w)[\s\W_]{0,3}[信❤♥💗💕💚]|wei\s*xin|we\s*chat|(?<![a-z])(?:wx|vx|weixin|wechat)(?![a-z])"
    r"|(?:加|\+|add|私)\s*(?:我|个|一下)?\s*(?:v|微|薇|威)(?![a-z]))"
    rf"(?P<filler>{_FILLER})(?P<id>{_ID}|(?:\+\s*)?{_RUN})",
    re.IGNORECASE,
)
_WXID = re.compile(r"(?<![a-z0-9_])wxid_[a-z0-9_-]{4,30}", re.IGNORECASE)
_QQ = re.compile(
    rf"(?:(?<![a-z])qq|扣扣|抠抠|企鹅|球球)(?:群|号码?|邮箱)?{_FILLER}(?P<id>{_RUN})",
    re.IGNORECASE,
)

_AT = r"(?:\s*@\s*|\s*[(\[（【]\s*at\s*[)\]）】]\s*|\s+at\s+|\s*艾特\s*|\s*圈\s*a\s*)"
_DOT = r"(?:\s*\.\s*|\s*[(\[（【]\s*dot\s*[)\]）】]\s*|\s+dot\s+|\s*点\s*)"
_EMAIL = re.compile(
    rf"(?<![a-z0-9._%+-])[a-z0-9][a-z0-9._%+-]{{0,63}}{_AT}[a-z0-9-]+(?:{_DOT}[a-z0-9-]+)*{_DOT}[a-z]{{2,24}}"
    r"(?![a-z0-9])",
    re.IGNORECASE,
)

_TLDS = ("com|cn|net|org|cc|io|me|top|xyz|info|vip|club|shop|site|link|ly|co|tv|app|ink|wang|ren|biz|hk|tw|jp|"
         "us|uk|de|so|la|to|gl|gd|im|ai|cloud|store|online|fun|life|live|work|tech|icu|one")
_URL_CHARS = r"[a-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
_URL = re.compile(rf"(?:https?://|www\.){_URL_CHARS}+", re.IGNORECASE)
# In a bare domain a plain dot has no space after it unless there is one before ("Thanks. Me too"
# is a sentence, "shop . com" is not).
_BARE_DOT = r"(?:\.|\s+\.\s*|\s*[(\[（【]\s*dot\s*[)\]）】]\s*|\s+dot\s+|\s*点\s*)"
_BARE = re.compile(
    rf"([a-z0-9](?<![a-z0-9@._-][a-z0-9])(?:[a-z0-9-]{{0,61}}[a-z0-9])?{_BARE_DOT}"
    rf"(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?{_BARE_DOT})*(?:{_TLDS}))(?![a-z0-9])"
    rf"(?:/{_URL_CHARS}*)?",
    re.IGNORECASE,
)
_SPELLED_DOT = re.compile(_BARE_DOT, re.IGNORECASE)
# What an e-mail address (an _AT) or a bare domain (a _BARE_DOT, then a top-level domain) cannot do
# without, looked for first: the full patterns try every letter (microseconds a message), these
# only the few characters they start with.
_AT_SIGN = re.compile(r"[@艾圈]|[(\[（【]\s*at|\sat\s", re.IGNORECASE)
_DOT_TLD = re.compile(rf"(?:[.点)\]）】]|dot)\s*(?:{_TLDS})(?![a-z0-9])", re.IGNORECASE)

# Keyword findings win over a bare phone run on the same digits (the keyword says what it is).
_PRIORITY = {EMAIL: 0, WECHAT: 1, QQ: 1, LINK: 2, PHONE: 3}


def _is_phone(digits: str, plus: bool, raw: str) -> bool:
    if plus and _INTERNATIONAL.fullmatch(digits):
        return True
    return bool(_MOBILE.fullmatch(digits) or _LANDLINE.fullmatch(digits) or _NANP.fullmatch(raw.strip()))


def _phones(text: str) -> Iterable[tuple[str, int, int]]:
    for match in _DIGIT_RUN.finditer(text):
        start, end = match.span()
        run = match.group()
        digits = _NOT_SEP.sub("", run)
        if len(digits) < 7 or len(digits) > 16:
            continue
        after = text[end:end + 1]
        if after.isascii() and after.isalpha():  # SKU12345678901a, 13800138000abc: a code, not a number
            continue
        opener = _RUN_OPENER.search(text, max(0, start - 4), start)
        plus = bool(opener and opener.group(1))
        if not _is_phone(digits, plus, run):
            continue
        if _NUMBER_WORD.search(text[max(0, start - 16):start]):
            continue
        yield PHONE, (opener.start() if opener else start), end


def _host_allowed(host: str, allowed: frozenset[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in allowed)


def _url_host(url: str) -> str:
    rest = re.sub(r"^(?:https?://)", "", url, flags=re.IGNORECASE)
    host = re.split(r"[/?#:]", rest, maxsplit=1)[0]
    return host.rsplit("@", 1)[-1]


def _any_of(*hints: str) -> re.Pattern:
    """One search for several substrings (a Python loop of `in` tests cost more than the search)."""
    return re.compile("|".join(map(re.escape, hints)))


# Cheap substring tests first: a pattern runs only on a text that has what it cannot match without
# (most messages have none of it, and then cost a lowercase copy and a few searches).
_NO_DIGITS = str.maketrans("", "", "0123456789")
_EMAIL_HINTS = _any_of("@", "at", "艾特", "圈")
_WECHAT_HINTS = _any_of("信", "❤", "♥", "💗", "💕", "💚", "xin", "chat", "wx", "vx", "加", "+", "add", "私")
_QQ_HINTS = _any_of("qq", "扣扣", "抠抠", "企鹅", "球球")
_LINK_HINTS = _any_of(".", "点", "dot")


def _candidates(text: str, allowed: frozenset[str]) -> Iterable[tuple[str, int, int]]:
    low = text.lower()
    digits = len(text) - len(text.translate(_NO_DIGITS))
    if _EMAIL_HINTS.search(low) and _AT_SIGN.search(text):
        for match in _EMAIL.finditer(text):
            yield EMAIL, match.start(), match.end()
    if _WECHAT_HINTS.search(low):
        yield from _wechat_ids(text)
    if "wxid_" in low:
        for match in _WXID.finditer(text):
            yield WECHAT, match.start(), match.end()
    if digits >= 5 and _QQ_HINTS.search(low):
        for match in _QQ.finditer(text):
            run_digits = _NOT_SEP.sub("", match.group("id"))
            if 5 <= len(run_digits) <= 11:
                yield QQ, match.start("id"), match.end("id")
    if "http" in low or "www." in low:
        for match in _URL.finditer(text):
            if not _host_allowed(_url_host(match.group()), allowed):
                yield LINK, match.start(), match.end()
    if _LINK_HINTS.search(low) and _DOT_TLD.search(text):
        for match in _BARE.finditer(text):
            host = _SPELLED_DOT.sub(".", match.group(1))
            if not _host_allowed(host, allowed):
                yield LINK, match.start(), match.end()
    if digits >= 7:
        yield from _phones(text)


def _wechat_ids(text: str) -> Iterable[tuple[str, int, int]]:
    for match in _WECHAT.finditer(text):
        wechat_id = match.group("id")
        if wechat_id[0].isalpha():
            # "WeChat is popular": in an English sentence a plain word is no id; a colon, a
            # Chinese keyword, or a digit, _ or - in it says it is one.
            english = match.group("keyword").isascii() and not re.search("[:：=＝]", match.group("filler"))
            if english and wechat_id.isalpha():
                continue
        elif len(_NOT_SEP.sub("", wechat_id).replace("+", "")) < 5:
            continue
        yield WECHAT, match.start("id"), match.end("id")


def scan(text: str, *, allowed_domains: Iterable[str] = ()) -> list[Finding]:
    """Every contact in `text`, in order, not overlapping; spans index the original text."""
    folded, origin = fold(text)
    allowed = allowed_domains if isinstance(allowed_domains, frozenset) else frozenset(allowed_domains)
    found = sorted(_candidates(folded, allowed), key=lambda c: (c[1], _PRIORITY[c[0]], -c[2]))
    findings: list[Finding] = []
    taken_until = -1
    for kind, start, end in found:
        if start < taken_until:
            # Overlaps a finding kept already: a longer one of higher priority wins its span.
            last = findings[-1]
            if _PRIORITY[kind] < _PRIORITY[last.kind] and end >= last.end and start <= last.start:
                findings[-1] = Finding(kind, start, end)
                taken_until = end
            continue
        findings.append(Finding(kind, start, end))
        taken_until = end
    if origin is None:
        return findings
    return [Finding(f.kind, origin[f.start], origin[f.end - 1] + 1) for f in findings]


def kinds_of(findings: Iterable[Finding]) -> list[str]:
    """The kinds found, each once, in the order of KINDS."""
    present = {finding.kind for finding in findings}
    return [kind for kind in KINDS if kind in present]


def mask(text: str, findings: Iterable[Finding], replacement: str = MASK) -> str:
    """The text with every finding replaced by `replacement`."""
    parts = []
    position = 0
    for finding in sorted(findings, key=lambda f: f.start):
        if finding.start < position:
            continue
        parts.append(text[position:finding.start])
        parts.append(replacement)
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)
