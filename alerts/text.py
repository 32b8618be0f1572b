"""An alert's detail in Chinese and English: what a part's text module (streams/<part>/text.py)
gives for each of its rules, the device families' names, and the words numbers are said in.

Never judge anything here, nor translate free text: each part says its own rules' findings
from the alert's fields; an alert none can say (a rule without a formatter, an alert stored
before its rule had the fields) is given in its rule's own words, in both languages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hazwatch.alerts.model import Alert

log = logging.getLogger("hazwatch.alerts")


@dataclass(frozen=True, slots=True)
class Detail:
    """One finding said in both languages; `read` false: the rule's own words, not said again."""

    zh: str
    en: str
    read: bool = True

    def said(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


# One rule's formatter: the detail of an alert of it, from its subject, details and message;
# None when the alert lacks what it needs (the rule's own words are given then).
Formatter = Callable[[Alert], Detail | None]

# The device families as the screen names them (api/routes/screen.py FAMILY_NAMES, read by
# i18n.js), in the singular for a sentence in English.
FAMILY_WORDS: Mapping[str, tuple[str, str]] = {
    "rfid": ("RFID 读写器", "RFID reader"),
    "scale": ("称重设备", "scale"),
    "terminal": ("现场终端", "site terminal"),
    "air": ("空气微站", "air station"),
    "camera": ("摄像机", "camera"),
}


def family_word(family: str, lang: str) -> str:
    """A family's name in `lang` (its id when it is no family hazwatch knows)."""
    words = FAMILY_WORDS.get(family)
    if words is None:
        return family
    return words[0] if lang == "zh" else words[1]


def detail_of(alert: Alert, formatters: Mapping[str, Formatter]) -> Detail:
    """The alert's detail: its rule's formatter's, else its own message in both languages."""
    formatter = formatters.get(alert.rule)
    if formatter is not None:
        try:
            found = formatter(alert)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            # details of another version, or a field of the wrong type: its own words still say it
            log.debug("alert %s (%s) not said again: %r", alert.alert_id, alert.rule, exc)
            found = None
        if found is not None:
            return found
    return Detail(alert.message, alert.message, read=False)


def number(value: object) -> str:
    """A number as a message shows it: 12, 0.35, 1.2e+03 (`:g`, no trailing zeros)."""
    return f"{float(str(value)):g}"


def seconds_zh(seconds: float) -> str:
    """ "30 秒", "5 分钟", "1.5 小时" (the presence rule's describe_s, in Chinese)."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} 小时"
    if seconds >= 120:
        return f"{seconds / 60:.0f} 分钟"
    return f"{seconds:.0f} 秒"


def seconds_en(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
