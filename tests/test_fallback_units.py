"""The fallback's parts on their own: the SMS text, the [fallback] config, sysfs interfaces, and atlib
against the modem emulator on a real pty (the real backend, the real serial line)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drivers.modem.atmodem import AtlibModem, parse_cmgl
from drivers.modem.backend import ModemGone, NotAnswering, SendRefused
from drivers.modem.link import judge
from drivers.modem.backend import ModemReading
from hil.harness.emulators import EmulatedModem
from hub.config import ConfigError, parse
from hub.events import Draft, Event, Priority, Source
from hub.fallback import compose, read_interface
from zoneinfo import ZoneInfo

BASE_CONFIG = """
[hub]
id = "hub-1"
resident = "R-000123"
[mqtt]
[[mqtt.broker]]
host = "127.0.0.1"
[store]
dir = "state"
[gpio]
factory = "sim"
[[device]]
id = "button-1"
kind = "alarm_button"
[device.gpio]
pin = 17
"""
MODEM = """
[[device]]
id = "modem"
kind = "modem"
[device.modem]
port = "/dev/ttyUSB2"
"""


def _event(kind: str = "alarm_button", room: str | None = "soverom", type_: str = "alarm.button") -> Event:
    draft = Draft(type=type_, priority=Priority.CRITICAL, source=Source(device="b", kind=kind, room=room),
                  ts="2026-12-05T20:05:00.000Z")
    return Event.from_draft(draft, hub="hub-1", resident="R-000123", seq=1)


def test_the_sms_names_residence_room_type_and_local_time_never_the_resident():
    text = compose(_event(), residence="Omsorgsbolig 12, Tromsø", tz=ZoneInfo("Europe/Oslo"),
                   reason="link_down", reminder=0)
    assert text == ("ALARM Omsorgsbolig 12, Tromso, rom soverom: alarmknapp kl 21:05 05.12. Sentralen kan ikke "
                    "naas. Svar OK for aa kvittere.")
    assert "R-000123" not in text
    remind = compose(_event("pull_cord", "bad"), residence="hub-1", tz=ZoneInfo("Europe/Oslo"),
                     reason="unacknowledged", reminder=2)
    assert remind.startswith("PAAMINNELSE 2: ALARM hub-1, rom bad: snortrekk") and "Ingen kvittering" in remind
    long = compose(_event(room="å" * 300), residence="x" * 300, tz=ZoneInfo("UTC"), reason="link_down", reminder=0)
    assert len(long) <= 160 and long.isascii()


def test_fallback_config_errors_carry_file_line_and_key():
    ok = parse(BASE_CONFIG + MODEM + '[fallback]\nnurse = ["+4791234567"]\n', check_files=False)
    assert ok.fallback.nurse == ["+4791234567"] and ok.fallback.fallback_after_s == 120.0
    with pytest.raises(ConfigError) as err:
        parse(BASE_CONFIG + '\n[fallback]\nnurse = ["+4791234567"]\n', filename="hub.toml", check_files=False)
    (issue,) = err.value.issues
    assert str(issue).startswith("hub.toml:") and "fallback.nurse" in str(issue) and "kind 'modem'" in str(issue)
    source = BASE_CONFIG + MODEM + '\n[fallback]\ncare = ["91234567", "+4791234567"]\nfallback_after_s = 0\n'
    with pytest.raises(ConfigError) as err:
        parse(source, filename="hub.toml", check_files=False)
    at = {key: n for n, line in enumerate(source.splitlines(), start=1) for key in ("care", "fallback_after_s")
          if line.startswith(f"{key} =")}
    got = {(i.line, i.key): i.message for i in err.value.issues}
    assert set(got) == {(at["care"], "fallback.care[0]"), (at["fallback_after_s"], "fallback.fallback_after_s")}
    assert "E.164" in got[(at["care"], "fallback.care[0]")] and "'91234567'" in got[(at["care"], "fallback.care[0]")]
    with pytest.raises(ConfigError) as err:
        parse(BASE_CONFIG + MODEM + '\n[fallback]\ncare = ["+4791234567", "+4791234567"]\n', filename="hub.toml",
              check_files=False)
    assert "fallback.care[1]: expected each number once" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse(BASE_CONFIG + MODEM.replace('port = "/dev/ttyUSB2"', 'port = "/dev/ttyUSB2"\ncheck_s = 0'),
              filename="hub.toml", check_files=False)
    assert "device[1].modem.check_s" in str(err.value)


def test_a_second_interface_is_read_from_sysfs(tmp_path: Path):
    def iface(name: str, operstate: str, carrier: str | None) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "operstate").write_text(operstate + "\n")
        if carrier is not None:
            (tmp_path / name / "carrier").write_text(carrier + "\n")

    iface("wwan0", "up", "1")
    iface("eth1", "down", None)
    iface("wg0", "unknown", "1")
    iface("eth2", "up", "0")
    assert read_interface("wwan0", tmp_path).up and read_interface("wg0", tmp_path).up
    assert read_interface("eth1", tmp_path).reason == "down"
    assert read_interface("eth2", tmp_path).reason == "no_carrier"
    assert read_interface("nope0", tmp_path).reason == "missing"
    assert read_interface("lo").up  # the real sysfs: loopback is up (operstate unknown, carrier 1)


def test_path_state_from_a_reading():
    assert judge(ModemReading(sim="ready", registration=5, signal=12), 5).up  # roaming is registered
    assert judge(ModemReading(sim="not_inserted"), 5).reason == "no_sim"
    assert judge(ModemReading(sim="ready", registration=2, signal=20), 5).reason == "not_registered"
    assert judge(ModemReading(sim="ready", registration=1, signal=99), 5).reason == "weak_signal"
    assert judge(ModemReading(sim="ready", registration=1, signal=4), 5).reason == "weak_signal"


def test_a_reply_ok_is_read_whole_although_it_looks_like_a_final_result_code():
    tokens = ['+CMGL: 1,"REC UNREAD","+4791234567","","26/12/05,21:30:00+04"', "OK",
              '+CMGL: 2,"REC UNREAD","+4798765432","","26/12/05,21:31:00+04"', "kommer", "om 5 min", "OK"]
    got = parse_cmgl(tokens)
    assert [(i, m.number, m.text) for i, m in got] == [(1, "+4791234567", "OK"),
                                                       (2, "+4798765432", "kommer\nom 5 min")]
    assert parse_cmgl(["OK"]) == []
    with pytest.raises(SendRefused):
        parse_cmgl(["+CMS ERROR: 310"])


@pytest.fixture
def emulated(tmp_path: Path):
    m = EmulatedModem(tmp_path).start()
    yield m
    m.stop()


def test_atlib_talks_to_the_emulated_modem_on_a_pty(emulated: EmulatedModem):
    modem = AtlibModem(str(emulated.link), 115200, command_timeout_s=1.0)
    modem.open()
    try:
        state = modem.read_state()
        assert (state.sim, state.registration, state.signal) == ("ready", 1, 20)
        ref = modem.send("+4791234567", "ALARM hub-1, rom bad", 5)
        assert ref == "1" and emulated.sent()[0]["text"] == "ALARM hub-1, rom bad"
        emulated.sms("+4791234567", "OK")
        emulated.sms("+4798765432", "hei")
        got = modem.inbox()
        assert [(m.number, m.text) for m in got] == [("+4791234567", "OK"), ("+4798765432", "hei")]
        assert modem.inbox() == [] and emulated.modem()["stored"] == []
        emulated.fault("cms_error", code=38)
        with pytest.raises(SendRefused) as refused:
            modem.send("+4791234567", "x", 5)
        assert refused.value.code == 38
        emulated.fault("none")
        emulated.fault("no_sim")
        assert modem.read_state().sim == "not_inserted"
        emulated.fault("none")
        emulated.fault("silent")
        t0 = time.monotonic()
        with pytest.raises(NotAnswering):
            modem.read_state()
        assert time.monotonic() - t0 < 10, "bounded by command_timeout_s, not atlib's minutes"
        emulated.fault("none")
        assert modem.read_state().sim == "ready"
        emulated.unplug()
        with pytest.raises(ModemGone) as gone:
            modem.read_state()
        assert gone.value.reason == "unplugged"
        emulated.replug()
        modem.open()
        assert modem.read_state().registration == 1
        assert emulated.cmgs() == ["+4791234567", "+4791234567"]
    finally:
        modem.close()
