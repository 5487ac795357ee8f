"""A small User-Agent parser: device type, operating system and browser, for session lists.

It recognises the families people actually sign in with and says "unknown" (None) for
the rest; it is a label for a human reading their session list, never a security
decision. Order matters: Edge and Opera also claim to be Chrome, Chrome claims Safari,
and iPadOS 13+ desktop-mode Safari claims to be a Mac.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from stich.auth.models import DeviceType

_MAX_UA = 512

_BOT = re.compile(r"bot\b|crawler|spider|slurp|headless|curl/|wget/|python-|httpx|go-http", re.I)

# (pattern, name) — first match wins.
_BROWSERS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bEdg(?:e|A|iOS)?/"), "Edge"),
    (re.compile(r"\bOPR/|\bOpera\b"), "Opera"),
    (re.compile(r"\bSamsungBrowser/"), "Samsung Internet"),
    (re.compile(r"\bFirefox/|\bFxiOS/"), "Firefox"),
    (re.compile(r"\bChrome/|\bCriOS/|\bChromium/"), "Chrome"),
    (re.compile(r"\bVersion/[\d.]+.*\bSafari/"), "Safari"),
    (re.compile(r"\bcurl/"), "curl"),
    (re.compile(r"\bpython-httpx/|\bpython-requests/|\bPython-urllib/"), "Python"),
]

_OPERATING_SYSTEMS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\biPad\b"), "iPadOS"),
    (re.compile(r"\biPhone\b|\biPod\b"), "iOS"),
    (re.compile(r"\bAndroid\b"), "Android"),
    (re.compile(r"\bCrOS\b"), "ChromeOS"),
    (re.compile(r"\bWindows\b"), "Windows"),
    (re.compile(r"\bMac OS X\b|\bMacintosh\b"), "macOS"),
    (re.compile(r"\bLinux\b|\bX11\b"), "Linux"),
]


@dataclass(frozen=True)
class Device:
    device_type: DeviceType
    os: str | None
    browser: str | None

    @property
    def name(self) -> str | None:
        """A human label such as "Firefox on Linux"."""
        if self.browser and self.os:
            return f"{self.browser} on {self.os}"
        return self.browser or self.os


def parse_user_agent(user_agent: str | None) -> Device:
    if not user_agent:
        return Device(DeviceType.UNKNOWN, None, None)
    ua = user_agent[:_MAX_UA]
    os_name = _first(_OPERATING_SYSTEMS, ua)
    browser = _first(_BROWSERS, ua)
    return Device(_device_type(ua, os_name), os_name, browser)


def _first(patterns: list[tuple[re.Pattern[str], str]], ua: str) -> str | None:
    for pattern, name in patterns:
        if pattern.search(ua):
            return name
    return None


def _device_type(ua: str, os_name: str | None) -> DeviceType:
    if _BOT.search(ua):
        return DeviceType.BOT
    if os_name == "iPadOS" or re.search(r"\bTablet\b", ua):
        return DeviceType.TABLET
    if os_name == "Android":
        # Android phones say "Mobile"; Android tablets do not.
        return DeviceType.MOBILE if "Mobile" in ua else DeviceType.TABLET
    if os_name == "iOS" or "Mobile" in ua:
        return DeviceType.MOBILE
    if os_name in ("Windows", "macOS", "Linux", "ChromeOS"):
        return DeviceType.DESKTOP
    return DeviceType.UNKNOWN


def mask_ip(ip: str | None) -> str | None:
    """The network a client was in, never its address: IPv4 /24, IPv6 /48."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
