"""The BLE driver's AES-CCM known-answer test: a broken crypto install is seen at start, not at the first advert."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from drivers.base import Emit, Priority
from drivers.ble.bthome import crypto
from drivers.ble.config import BleDevice, BleSection
from drivers.ble.driver import BleDriver

KEY = "231d39c1d7cc1ab1aee224cd096db932"


class Port:
    """What the driver asks of the hub at attach, recording the events it posts."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, Emit]] = []

    def post(self, device: str, e: Emit) -> None:
        self.posted.append((device, e))

    def button(self, device: str, *, input_name: str) -> Any:
        return SimpleNamespace(gesture=lambda *_: None)


def devices() -> list[Any]:
    def dev(id_: str, kind: str, address: str, bindkey: str | None) -> Any:
        return SimpleNamespace(id=id_, kind=kind, ble=BleDevice(address=address, bindkey=bindkey), gatt=None)

    return [dev("ble-button", "alarm_button", "A4:C1:38:00:00:01", KEY),
            dev("front-door", "door", "A4:C1:38:00:00:02", None)]


class WrongCipher:
    """An AES-CCM that answers, but wrongly (a broken build)."""

    def __init__(self, key: bytes, tag_length: int) -> None:
        pass

    def decrypt(self, nonce: bytes, data: bytes, associated: bytes | None) -> bytes:
        return bytes(len(data) - 4)


class NoCipher:
    """An AES-CCM the backend refuses (an OpenSSL without CCM)."""

    def __init__(self, key: bytes, tag_length: int) -> None:
        raise RuntimeError("CCM is not supported by this backend")


def test_the_self_test_passes_on_this_install() -> None:
    assert crypto.self_test() is None


@pytest.mark.parametrize(("cipher", "says"), [(WrongCipher, "decrypted to counter 0x33221100, bytes 000000000000"),
                                              (NoCipher, "RuntimeError: CCM is not supported")])
def test_the_self_test_says_what_is_wrong(monkeypatch: pytest.MonkeyPatch, cipher: type, says: str) -> None:
    monkeypatch.setattr(crypto, "AESCCM", cipher)
    error = crypto.self_test()
    assert error is not None and says in error


def test_a_broken_cipher_faults_each_encrypted_device_and_the_driver_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "AESCCM", WrongCipher)
    port = Port()
    driver = BleDriver(port, devices(), BleSection())  # type: ignore[arg-type]
    assert set(driver.decoders) == {"ble-button", "front-door"}  # the plain door is read as before
    assert port.posted == [("ble-button", Emit("device.fault", Priority.HIGH,
                                               {"fault": "decryption_unavailable", "code": None}))]


def test_a_working_cipher_posts_nothing() -> None:
    port = Port()
    BleDriver(port, devices(), BleSection())  # type: ignore[arg-type]
    assert port.posted == []
