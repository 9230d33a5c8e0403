"""What counts as one reaction: exactly one extended grapheme cluster that is an emoji.

The grammar is UTS #51's "possible emoji" (ED-27, the regex its annex suggests), run with the
`regex` package's Unicode properties and its `\\X` grapheme clusters: a flag (two regional
indicators), a keycap (`[0-9#*]` + optional U+FE0F + U+20E3), or an emoji character with an
optional skin-tone modifier, presentation selector or tag sequence, and such elements joined by
ZWJ (families, professions, 🏳️‍🌈). Plain digits, `#`, `*`, a lone regional indicator and text
presentation (U+FE0E) are not reactions. The string is kept exactly as sent: "❤" and "❤️" are two
different reactions, as clients send them consistently.
"""

from __future__ import annotations

import regex

_ELEMENT = r"""
(?:
    \p{Regional_Indicator}\p{Regional_Indicator}
  | [0-9\#*]\uFE0F?\u20E3
  | (?![0-9\#*\p{Regional_Indicator}])\p{Emoji}
    (?:\p{Emoji_Modifier} | \uFE0F\u20E3? | [\U000E0020-\U000E007E]+\U000E007F)?
)
"""
_EMOJI = regex.compile(rf"{_ELEMENT}(?:\u200D{_ELEMENT})*", regex.VERBOSE | regex.VERSION1)
_GRAPHEME = regex.compile(r"\X")

MAX_REACTION_CHARS = 64  # the column's width; the longest standard sequences are far shorter


def is_single_emoji(text: str) -> bool:
    """True when `text` is one grapheme cluster and that cluster is an emoji."""
    if not text or len(text) > MAX_REACTION_CHARS:
        return False
    return _GRAPHEME.fullmatch(text) is not None and _EMOJI.fullmatch(text) is not None
