"""What an alarm SMS says: residence, room, alarm type, local time; never the resident.

Plain ASCII within one SMS (160 characters of the GSM 7-bit alphabet): Norwegian
letters are written out (æ ae, ø o, å aa), anything else is dropped, so every
phone shows the same text whatever the modem's character set. The resident's
pseudonymous id is not in it, and no name is: only what the config says about
the residence (``[fallback] residence``, else the hub id) and the room.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo

from hub.events import Event

#: One SMS of the GSM 7-bit alphabet.
MAX_CHARS = 160

#: The source's kind -> what the SMS calls the alarm.
KIND_WORDS = {"alarm_button": "alarmknapp", "pull_cord": "snortrekk", "nurse_call": "pasientsignal"}
TYPE_WORDS = {"alarm.test": "testalarm", "alarm.nursecall": "pasientsignal", "alarm.button": "alarm"}
#: Why the SMS goes out -> the sentence that says it.
REASON_WORDS = {"unacknowledged": "Ingen kvittering fra sentralen.", "link_down": "Sentralen kan ikke naas."}
_SPELL = str.maketrans({"æ": "ae", "Æ": "Ae", "ø": "o", "Ø": "O", "å": "aa", "Å": "Aa"})


def ascii_text(text: str) -> str:
    """``text`` in printable ASCII: Norwegian letters written out, accents dropped, the rest left out."""
    plain = unicodedata.normalize("NFKD", text.translate(_SPELL))
    return "".join(c for c in plain if " " <= c <= "~")


def alarm_words(event: Event) -> str:
    """What kind of alarm, in the on-call nurse's words (``alarmknapp``, ``snortrekk``, ``testalarm`` ...)."""
    if event.type == "alarm.test":
        return TYPE_WORDS["alarm.test"]
    return KIND_WORDS.get(event.source.kind) or TYPE_WORDS.get(event.type, event.type)


def local_time(ts: str, tz: ZoneInfo) -> str:
    """An event's RFC 3339 time as ``21:05 05.12`` in the residence's time zone."""
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(tz)
    return t.strftime("%H:%M %d.%m")


def compose(event: Event, *, residence: str, tz: ZoneInfo, reason: str, reminder: int) -> str:
    """The SMS for the episode whose first alarm is ``event`` (``reminder`` 0: the first SMS)."""
    room = event.data.get("room") if isinstance(event.data.get("room"), str) else None
    room = room or event.source.room or "-"
    head = f"PAAMINNELSE {reminder}: " if reminder else ""
    text = (f"{head}ALARM {ascii_text(residence)[:40]}, rom {ascii_text(room)[:24]}: {alarm_words(event)} "
            f"kl {local_time(event.ts, tz)}. {REASON_WORDS.get(reason, '')} Svar OK for aa kvittere.")
    return " ".join(text.split())[:MAX_CHARS]
